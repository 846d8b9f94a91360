package ca

import (
	"slices"
	"time"
)

// MaxCertTTL is the longest certificate lifetime a profile may ask for
// (a host group's cert_ttl).
const MaxCertTTL = 24 * time.Hour

// knownExtensions are the OpenSSH certificate extensions a profile may grant.
var knownExtensions = []string{
	"permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
	"permit-pty", "permit-user-rc", "no-touch-required", "verify-required",
}

// KnownExtensions returns the OpenSSH certificate extensions a profile may
// grant, in a fixed order; the caller may change the slice.
func KnownExtensions() []string { return slices.Clone(knownExtensions) }

// IsKnownExtension reports whether a profile may grant the extension e.
func IsKnownExtension(e string) bool { return slices.Contains(knownExtensions, e) }
