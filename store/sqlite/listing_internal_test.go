package sqlite

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
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

// TestReasonCacheKeepsNoRow: the cache's keys are copies, not slices of
// the packed rows they came from, which would keep a kilobyte per request
// alive through a whole export (it did, and the server's RSS at a million
// certificates went from 28 to 48 MB).
func TestReasonCacheKeepsNoRow(t *testing.T) {
	ctx := t.Context()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	conn, err := d.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := &reasonCache{conn: conn}
	defer rc.close()
	row := "1\x1fr-aaaaaaaaaaaaaaaa\x1f" + strings.Repeat("x", 1000)
	id := row[2:20]
	if _, err := rc.get(ctx, id); err != nil {
		t.Fatal(err)
	}
	for k := range rc.m {
		if k != id {
			t.Fatalf("cached %q, want %q", k, id)
		}
		if unsafe.StringData(k) == unsafe.StringData(id) {
			t.Errorf("the cache's key shares memory with the row it was read from")
		}
	}
}
