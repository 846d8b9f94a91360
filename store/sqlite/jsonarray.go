package sqlite

import (
	"encoding/json"
	"strings"
)

// decodeStrings decodes a JSON array of strings, the form principals and
// approvers are stored in, exactly as json.Unmarshal into a []string does.
// The arrays RecordCertificate writes (json.Marshal of logins and group
// names: printable ASCII, no escapes, no spaces) are split directly;
// anything else goes through encoding/json.
func decodeStrings(s string) ([]string, error) {
	if s == "[]" {
		return []string{}, nil
	}
	if len(s) >= len(`[""]`) && s[:2] == `["` && s[len(s)-2:] == `"]` {
		inner := s[2 : len(s)-2]
		out := make([]string, 0, strings.Count(inner, `","`)+1)
		for {
			part, rest, more := strings.Cut(inner, `","`)
			if !plainJSONString(part) {
				break
			}
			out = append(out, part)
			if !more {
				return out, nil
			}
			inner = rest
		}
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// plainJSONString says s, found between two quotes, is a JSON string's
// whole content that decodes to itself: printable ASCII without '"' or
// '\\' (no escapes, no bytes encoding/json would replace).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
