package api_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// TestBreakGlassAPI: POST /v1/requests with "break_glass": true grants at
// once; its certificates say by=break-glass; it is reviewable for the
// group's approvers; /metrics and the audit report count it and, past
// review_within, its overdue follow-up; not justified revokes its
// certificates; a group without a policy refuses with 403.
func TestBreakGlassAPI(t *testing.T) {
	s := newTestServer(t)
	ctx := t.Context()
	alice, bob, carol := s.as(t, "alice"), s.as(t, "bob"), s.as(t, "carol")

	_, err := alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "staging", Reason: "INC-1", BreakGlass: true})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != approval.CodeBreakGlassNotAllowed {
		t.Fatalf("break glass on staging = %v; want 403 %s", err, approval.CodeBreakGlassNotAllowed)
	}

	r, err := alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Reason: "INC-42: primary down", BreakGlass: true})
	if err != nil {
		t.Fatalf("break glass: %v", err)
	}
	if r.State != ca.StateApproved || !r.BreakGlass || r.FollowUp != ca.FollowUpNeedsReview || r.Duration != "30m0s" ||
		r.ReviewDueAt == nil || !r.ReviewDueAt.Equal(t0.Add(24*time.Hour)) || r.FollowedUpAt != nil {
		t.Fatalf("break-glass request = %+v", r)
	}
	cert, err := alice.IssueCertificate(ctx, r.ID, subjectKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cert.KeyID, ":by=break-glass") || len(cert.Approvers) != 0 {
		t.Errorf("certificate key id %q approvers %v; want by=break-glass, none", cert.KeyID, cert.Approvers)
	}
	list, err := bob.ListRequests(ctx, api.ListRequestsOptions{Reviewable: true})
	if err != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("bob's reviewable = %+v, %v; want the break-glass grant", list, err)
	}

	m := scrape(t, s.url)
	for name, want := range map[string]string{
		`jit_ssh_break_glass_grants_total{host_group="prod-db"}`:       "1",
		`jit_ssh_break_glass_overdue_follow_ups{host_group="prod-db"}`: "0",
	} {
		if got := m[name]; got != want {
			t.Errorf("%s = %q, want %s", name, got, want)
		}
	}
	if _, ok := m[`jit_ssh_break_glass_grants_total{host_group="staging"}`]; ok {
		t.Errorf("a group without break glass has a break-glass sample")
	}

	s.clock.advance(2 * time.Minute) // the certificate (5m) is still valid
	got, err := bob.Review(ctx, r.ID, api.ReviewRequest{Event: ca.ReviewRequestChanges, Body: "no such incident"})
	if err != nil {
		t.Fatal(err)
	}
	if got.FollowUp != ca.FollowUpNotJustified || got.FollowedUpAt == nil || got.OpenAt(s.clock.now()) {
		t.Errorf("after REQUEST_CHANGES: follow-up %q at %v, open %v; want not_justified, ended", got.FollowUp, got.FollowedUpAt, got.OpenAt(s.clock.now()))
	}
	serial, _ := strconv.ParseUint(cert.Serial, 10, 64)
	if c, err := carol.GetCertificate(ctx, serial); err != nil || c.RevokedAt == nil {
		t.Errorf("the grant's certificate after not justified: revoked at %v, %v; want revoked", c.RevokedAt, err)
	}

	// A second break glass, never reviewed: overdue after review_within.
	r2, err := alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Reason: "INC-43", BreakGlass: true})
	if err != nil {
		t.Fatal(err)
	}
	s.clock.advance(25 * time.Hour)
	m = scrape(t, s.url)
	for name, want := range map[string]string{
		`jit_ssh_break_glass_grants_total{host_group="prod-db"}`:       "2",
		`jit_ssh_break_glass_overdue_follow_ups{host_group="prod-db"}`: "1",
	} {
		if got := m[name]; got != want {
			t.Errorf("after 25h: %s = %q, want %s", name, got, want)
		}
	}
	rep, err := carol.Report(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BreakGlass != 2 || len(rep.OverdueFollowUps) != 1 || rep.OverdueFollowUps[0].RequestID != r2.ID ||
		rep.OverdueFollowUps[0].Requester != "alice" || rep.MedianToFollowUpSeconds != (2*time.Minute).Seconds() {
		t.Errorf("report: %d break glass, overdue %+v, median to follow-up %vs; want 2, %s by alice, 120s", rep.BreakGlass, rep.OverdueFollowUps, rep.MedianToFollowUpSeconds, r2.ID)
	}
	_, err = alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Reason: "INC-44", BreakGlass: true})
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != approval.CodeFollowUpOverdue || !strings.Contains(ae.Message, r2.ID) {
		t.Fatalf("break glass with an overdue follow-up = %v; want 403 %s naming %s", err, approval.CodeFollowUpOverdue, r2.ID)
	}
}
