// Package storetest is the contract test suite of the jit-ssh ledger: the
// same tests run against every implementation of store.Ledger (cashier's
// pattern), so a new backend is done when Run passes against it. It tests
// behaviour through the contract only; what an implementation does beneath
// it (files, locks, migrations, tampering with its rows) is that
// implementation's own tests' business.
package storetest

import (
	"testing"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// Run runs the contract tests against the ledgers open returns: a new,
// empty ledger for each test, closed by open's own cleanup. Event times
// the tests do not give are the ledger's clock's (any clock will do).
func Run(t *testing.T, open func(t *testing.T) store.Ledger) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Ledger)
	}{
		{"ApplyRequestChange", testApplyRequestChange},
		{"ReviewsAndDismissal", testReviewsAndDismissal},
		{"ListRequests", testListRequests},
		{"CertificateRoundTrip", testCertificateRoundTrip},
		{"ValidAt", testValidAt},
		{"RevokeSerialTakesItsGrantsCertificates", testRevokeSerialTakesItsGrantsCertificates},
		{"RevokeRequestAndUser", testRevokeRequestAndUser},
		{"ListEvents", testListEvents},
		{"VerifyUntouched", testVerifyUntouched},
		{"Report", testReport},
		{"BreakGlass", testBreakGlass},
		{"NotFound", testNotFound},
		{"Health", testHealth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// countEvents returns how many events the ledger holds.
func countEvents(t *testing.T, db store.EventLog) int {
	t.Helper()
	n := 0
	if err := db.ListEvents(t.Context(), ca.EventFilter{}, func(*ca.Event) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
