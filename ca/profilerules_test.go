package ca

import (
	"slices"
	"testing"
)

func TestKnownExtensions(t *testing.T) {
	got := KnownExtensions()
	want := []string{"permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
		"permit-pty", "permit-user-rc", "no-touch-required", "verify-required"}
	if !slices.Equal(got, want) {
		t.Fatalf("KnownExtensions = %q, want %q", got, want)
	}
	got[0] = "changed"
	if KnownExtensions()[0] != want[0] {
		t.Errorf("KnownExtensions shares its slice with the caller")
	}
	for _, e := range want {
		if !IsKnownExtension(e) {
			t.Errorf("IsKnownExtension(%q) = false", e)
		}
	}
	for _, e := range []string{"", "permit-root", "PERMIT-PTY", "source-address"} {
		if IsKnownExtension(e) {
			t.Errorf("IsKnownExtension(%q) = true", e)
		}
	}
}
