package approval_test

import (
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
)

// FuzzParseHours fuzzes the allowed_hours value of a host group's config.
func FuzzParseHours(f *testing.F) {
	for _, s := range []string{
		"Mon-Fri 07:00-20:00 UTC", "Sat-Sun 00:00-24:00", "mon,wed,sat-sun 09:30-17:45 Europe/Berlin",
		"Fri-Mon 22:00-23:00 America/New_York", "Mon 24:00-24:00", "Mon 10:00-09:00", "Mon 7:00-8:00",
		"Mon 07:00-20:00 ../../etc/passwd", "Mon 07:00-20:00 Local", "Mon-Fri", "", "Mon-Fri 07:00-20:00 UTC extra",
		"Mon--Fri 07:00-20:00", "Mon, 07:00-20:00", "Mon 07:00-20:00\n",
	} {
		f.Add(s, int64(1767600000))
	}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		h, err := approval.ParseHours(s)
		if err != nil {
			if h != nil {
				t.Fatalf("ParseHours(%q) returned hours and an error", s)
			}
			return
		}
		// What was accepted is what String shows, and it parses again to
		// the same window.
		if h.String() != s {
			t.Fatalf("String() = %q, want %q", h.String(), s)
		}
		again, err := approval.ParseHours(h.String())
		if err != nil {
			t.Fatalf("re-parsing %q: %v", s, err)
		}
		at := time.Unix(unix%(1<<40), 0)
		if h.Contains(at) != again.Contains(at) {
			t.Fatalf("%q: the re-parsed window disagrees at %s", s, at)
		}
	})
}
