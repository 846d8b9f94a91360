package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

// SetReasonCacheBytes lowers the bound of a listing's reason cache for a
// test and returns the function that restores it.
func SetReasonCacheBytes(n int) (restore func()) {
	old := reasonCacheBytes
	reasonCacheBytes = n
	return func() { reasonCacheBytes = old }
}

// TestDecodeStringsMatchesEncodingJSON: the fast split gives exactly what
// json.Unmarshal gives (nil and empty slices told apart), and refuses
// what it refuses.
func TestDecodeStringsMatchesEncodingJSON(t *testing.T) {
	var inputs []string
	for _, v := range [][]string{
		nil, {}, {""}, {"", ""}, {"prod-db"}, {"bob", "dave", "erin"}, {"a,b", `","`, `"`, `\`, "a\\\"b"},
		{"<html>&amp;"}, {"é", "日本"}, {"\u2028"}, {"\x00", "\x1f", "\x7f"}, {"\xff", "a\xc3"}, {" spaced ", "tab\t"},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	inputs = append(inputs,
		`null`, ``, `[`, `]`, `[""`, `["]`, `["","]`, `[ "a" ]`, `["a" ,"b"]`, `["a", "b"]`, `["a","b"`, `["a","b"]x`,
		`["\u0061"]`, `["a\"b"]`, `["a""b"]`, `[1]`, `["a",1]`, `[null]`, `["a",null]`, ` ["a"]`, `["a"] `,
		"[\"\xff\"]", "[\"\xc3\xa9\"]", "[\"a\tb\"]", "[\"\x7f\"]", `["a","","b"]`, `[",",","]`, `["",""]`, `[""]`,
		`["a"],["b"]`, `{"a":1}`, `"a"`,
	)
	for _, in := range inputs {
		got, gotErr := decodeStrings(in)
		var want []string
		wantErr := json.Unmarshal([]byte(in), &want)
		if (gotErr != nil) != (wantErr != nil) {
			t.Errorf("decodeStrings(%q): error %v, json.Unmarshal: %v", in, gotErr, wantErr)
			continue
		}
		if wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("decodeStrings(%q) = %#v, json.Unmarshal gives %#v", in, got, want)
		}
	}
}
