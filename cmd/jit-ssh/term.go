package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// termWriter is the CLI's human output (tables and sentences, on stdout
// and stderr): whatever the server or its ledger holds, nothing printed
// acts on the terminal or reorders the text around it. Every control
// character but newline and tab (the output's own layout) and every
// bidirectional control is written as a visible escape, \u001b for ESC,
// \u202e for RIGHT-TO-LEFT OVERRIDE, and each byte of invalid UTF-8 as
// \xff. The escapes are JSON's, so a JSON log line through it stays valid.
// Each Write is escaped on its own; the writers that feed it (fmt,
// tabwriter) never split a character across writes.
type termWriter struct{ w io.Writer }

func (t termWriter) Write(p []byte) (int, error) {
	if termSafe(p) {
		return t.w.Write(p)
	}
	var b bytes.Buffer
	b.Grow(len(p) + 16)
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, p[i])
		case r == '\n' || r == '\t':
			b.WriteByte(byte(r))
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(p[i : i+size])
		}
		i += size
	}
	if _, err := t.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// termSafe reports whether p is printable ASCII, newlines and tabs: the
// common case, written as it is.
func termSafe(p []byte) bool {
	for _, c := range p {
		if (c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// cell makes a value from the ledger one table cell: a newline or tab in
// it (which termWriter leaves alone, as the table's own layout) is written
// \n or \t, so a stored value cannot start a row of its own or shift the
// columns. Empty is "-".
func cell(s string) string {
	if strings.ContainsAny(s, "\n\t") {
		s = strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(s)
	}
	return orDash(s)
}
