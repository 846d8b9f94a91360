package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/oidc"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
	"github.com/jit-ssh/jit-ssh/test/oidcstub"
)

// TestWorkloadTokenAcceptedOncePerServer: a job's ID token is good for
// one call; presented again, at the same endpoint or another one (the
// request, then the certificate), it is refused with 401 and nothing is
// issued. A person's token under the GitHubActions scheme and a job's token
// as a bearer token are refused too.
func TestWorkloadTokenAcceptedOncePerServer(t *testing.T) {
	stub := oidcstub.New(t)
	clk := &clock{t: t0}
	stub.SetClock(clk.now)
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	web := &approval.Policy{Group: "web", Principals: []string{"deploy"}, Approvers: []string{"sre-leads"}, MaxDuration: time.Hour, CertTTL: 5 * time.Minute,
		Workloads: []approval.WorkloadRule{{Repository: "acme/web", Ref: "refs/heads/main"}}}
	svc := approval.NewService(db, static.New(map[string]static.User{"alice": {Token: "dev-alice", Teams: []string{"backend"}}}),
		[]*approval.Policy{web}, nil, approval.WithClock(clk.now),
		approval.WithWorkloadVerifier(oidc.New(stub.URL, oidcstub.DefaultAudience, oidc.WithClock(clk.now))))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ca.NewFileSigner(caKey)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api.NewServer(svc, ca.NewIssuer(signer, db, ca.WithClock(clk.now)), signer, db, api.WithClock(clk.now)))
	t.Cleanup(hs.Close)
	ctx := t.Context()
	client := func(token func() string) *api.Client {
		c, err := api.NewClient(hs.URL, "", api.WithCredential(approval.WorkloadScheme, func(context.Context) (string, error) { return token(), nil }))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	want401 := func(what string, err error) {
		t.Helper()
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", what, err)
		}
	}

	same := stub.Token(nil)
	replaying := client(func() string { return same })
	r, err := replaying.CreateRequest(ctx, api.CreateRequest{HostGroup: "web", Duration: "10m"})
	if err != nil {
		t.Fatalf("first use of the token: %v", err)
	}
	_, err = replaying.IssueCertificate(ctx, r.ID, subjectKey(t))
	want401("the token again, at the certificate endpoint", err)
	_, err = replaying.CreateRequest(ctx, api.CreateRequest{HostGroup: "web", Duration: "10m"})
	want401("the token again, at the request endpoint", err)

	asPerson := client(func() string { return "dev-alice" })
	_, err = asPerson.GetRequest(ctx, r.ID, 0, 0)
	want401("a person's token under the GitHubActions scheme", err)
	bearer, err := api.NewClient(hs.URL, stub.Token(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bearer.GetRequest(ctx, r.ID, 0, 0)
	want401("a job's token as a bearer token", err)

	n := 0
	if err := db.ListCertificates(ctx, ca.CertFilter{}, func(*ca.Certificate) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("%d certificates issued (%v), want none", n, err)
	}
	fresh := client(func() string { return stub.Token(nil) })
	if _, err := fresh.IssueCertificate(ctx, r.ID, subjectKey(t)); err != nil {
		t.Errorf("a fresh token of the same job: %v", err)
	}
}
