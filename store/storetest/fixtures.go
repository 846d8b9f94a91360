package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// T0 is the fixed start of the contract tests' timelines.
var T0 = time.Date(2025, 6, 2, 10, 0, 0, 123456789, time.UTC)

// NewRequest returns a request in state; an approved one is approved at
// created with a grant long enough for every certificate a test records
// under it (RecordCertificate refuses a certificate whose grant is not
// open at its issue time).
func NewRequest(id, requester, group, state string, created time.Time) *ca.Request {
	r := &ca.Request{
		ID: id, HostGroup: group, Requester: requester, State: state, Reason: "INC-1 " + id,
		Duration: 30 * time.Minute, CreatedAt: created, UpdatedAt: created, Version: 1,
	}
	if state == ca.StateApproved {
		r.ApprovedAt, r.Duration = created, 5*365*24*time.Hour
	}
	return r
}

// Create files r through ApplyRequestChange with its request.created
// event, failing the test on an error.
func Create(t testing.TB, db store.Requests, r *ca.Request) {
	t.Helper()
	err := db.ApplyRequestChange(t.Context(), ca.RequestChange{Request: r, Create: true, Events: []ca.Event{{
		Time: r.CreatedAt, Actor: r.Requester, Type: ca.EventRequestCreated, RequestID: r.ID,
		Data: map[string]any{"host_group": r.HostGroup},
	}}})
	if err != nil {
		t.Fatalf("creating %s: %v", r.ID, err)
	}
}

// CertFor returns a certificate record for request reqID.
func CertFor(serial uint64, user, group, reqID string, issued time.Time, ttl time.Duration) *ca.Certificate {
	return &ca.Certificate{
		Serial: serial, KeyID: fmt.Sprintf("jit-ssh:user=%s:group=%s:req=%s:by=bob", user, group, reqID),
		HostGroup: group, Principals: []string{group}, ValidAfter: issued.Add(-2 * time.Minute), ValidBefore: issued.Add(ttl),
		Requester: user, RequestID: reqID, Approvers: []string{"bob"}, Fingerprint: "SHA256:subject",
		CAFingerprint: "SHA256:ca", Certificate: "ssh-ed25519-cert-v01@openssh.com AAAA", IssuedAt: issued,
	}
}
