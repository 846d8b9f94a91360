package store_test

import (
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// TestChainEncodingsArePinned pins the chain's row hash, the row digests
// and the row MAC to fixed values: every ledger ever written holds them,
// in every backend, so a change here breaks every existing ledger's
// verification (and the copy of a ledger from one backend to another).
func TestChainEncodingsArePinned(t *testing.T) {
	at := time.Date(2025, 6, 2, 10, 0, 0, 123456789, time.UTC)
	r := &ca.Request{ID: "r-aaaaaaaaaaaaaaaa", HostGroup: "prod-db", Requester: "alice", State: ca.StateApproved, Reason: "INC-1",
		Duration: time.Hour, CreatedAt: at, UpdatedAt: at, ApprovedAt: at, Version: 2,
		Reviews: []ca.Review{{ID: 1, Reviewer: "bob", Event: ca.ReviewApprove, Body: "ok", CreatedAt: at}}}
	c := &ca.Certificate{Serial: 1 << 63, KeyID: "jit-ssh:user=alice", HostGroup: "prod-db", Principals: []string{"prod-db"},
		ValidAfter: at, ValidBefore: at.Add(5 * time.Minute), Requester: "alice", RequestID: r.ID, Fingerprint: "SHA256:s",
		CAFingerprint: "SHA256:ca", Certificate: "ssh-ed25519-cert-v01@openssh.com AAAA", IssuedAt: at}
	row, err := store.NewCertRow(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, got, want string }{
		{"EventRowHash", store.EventRowHash(7, at.UnixNano(), "alice", ca.EventRequestCreated, r.ID, 1<<63, `{"a":1}`, "prev"), "8b54865245b01d0687e0f87863f719a8a0ab0cbed82bfb0c6058081eb6700468"},
		{"RequestDigest", store.RequestDigest(r), "d326de1a046a14eb1b3db9f96f995663acbef6e1cc125579c260f8e88e42c103"},
		{"ReviewsDigest", store.ReviewsDigest(r), "59461c80247b4f2bec3607872efeb1370e95a4d62817dcc35691797cf6f57345"},
		{"CertRow.Digest", row.Digest(), "e6c1d8490ee3bf454c9387b24ab2d680c7b84bea50ea4bbc54572e722fdc54ac"},
		{"EventMAC", store.EventMAC([]byte("0123456789abcdef0123456789abcdef"), 7, "hash"), "29a5e9d72cb9016343a80945edbfb2c1"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}
