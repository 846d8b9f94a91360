package ca

import (
	"errors"
	"strings"
	"testing"
)

func goodWorkload() Workload {
	return Workload{Repository: "acme/web", Ref: "refs/heads/main", Environment: "production", RunID: "4242", RunAttempt: "1",
		Workflow: "deploy", SHA: "e3b0c442", Actor: "alice", Subject: "repo:acme/web:environment:production", TokenID: "abc"}
}

func TestCheckWorkload(t *testing.T) {
	if err := CheckWorkload(goodWorkload()); err != nil {
		t.Fatalf("a GitHub job's claims: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(w *Workload)
	}{
		{"no slash", func(w *Workload) { w.Repository = "acmeweb" }},
		{"colon in the name", func(w *Workload) { w.Repository = "acme/web:run=1" }},
		{"second slash", func(w *Workload) { w.Repository = "acme/web/x" }},
		{"bad owner", func(w *Workload) { w.Repository = "-acme/web" }},
		{"dot dot", func(w *Workload) { w.Repository = "acme/.." }},
		{"long name", func(w *Workload) { w.Repository = "acme/" + strings.Repeat("a", 101) }},
		{"empty run", func(w *Workload) { w.RunID = "" }},
		{"run with a field", func(w *Workload) { w.RunID = "1:group=x" }},
		{"long run", func(w *Workload) { w.RunID = strings.Repeat("9", 20) }},
		{"attempt not decimal", func(w *Workload) { w.RunAttempt = "x" }},
		{"no ref", func(w *Workload) { w.Ref = "" }},
		{"newline in ref", func(w *Workload) { w.Ref = "refs/heads/a\nb" }},
		{"non-ASCII environment", func(w *Workload) { w.Environment = "prod\u202e" }},
		{"long workflow", func(w *Workload) { w.Workflow = strings.Repeat("w", 256) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := goodWorkload()
			tc.edit(&w)
			if err := CheckWorkload(w); !errors.Is(err, ErrInvalidName) {
				t.Errorf("CheckWorkload(%+v) = %v, want ErrInvalidName", w, err)
			}
		})
	}
}

func TestWorkloadNames(t *testing.T) {
	w := goodWorkload()
	if got := w.Requester(); got != "gha:acme/web:run=4242" {
		t.Errorf("Requester = %q", got)
	}
	if got := w.Identity(); got != "repo:acme/web:environment:production" {
		t.Errorf("Identity = %q", got)
	}
	w.Environment = ""
	if got := w.Identity(); got != "repo:acme/web:ref:refs/heads/main" {
		t.Errorf("Identity without environment = %q", got)
	}
	for _, ok := range []string{"alice", "gha:acme/web:run=1", "gha:a-b/.github:run=99"} {
		if err := CheckRequester(ok); err != nil {
			t.Errorf("CheckRequester(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "gha:", "gha:acme/web", "gha:acme/web:run=", "gha:acme/web:run=1:x", "gha:acme:run=1", "ghb:acme/web:run=1", "gha:acme/web:run=1\n"} {
		if CheckRequester(bad) == nil {
			t.Errorf("CheckRequester(%q) accepted", bad)
		}
	}
}

func TestWorkloadKeyID(t *testing.T) {
	id, err := KeyID("gha:acme/web:run=4242", "web-prod", "r-abcdefghijklmnop", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "jit-ssh:user=gha:acme/web:run=4242:group=web-prod:req=r-abcdefghijklmnop:by=-"; id != want {
		t.Errorf("KeyID = %q, want %q", id, want)
	}
	user, group, req, by, ok := KeyIDFields(id)
	if !ok || user != "gha:acme/web:run=4242" || group != "web-prod" || req != "r-abcdefghijklmnop" || by != nil {
		t.Errorf("KeyIDFields = %q %q %q %v %v", user, group, req, by, ok)
	}
	if _, err := KeyID("gha:acme/web:run=4242:group=x", "web-prod", "r-abcdefghijklmnop", nil); err == nil {
		t.Error("KeyID took a user with a forged field")
	}
	// Six fields that are not a workload's are not a KeyId.
	if _, _, _, _, ok := KeyIDFields("jit-ssh:user=a:b:c:group=g:req=r-abcdefghijklmnop:by=-"); ok {
		t.Error("KeyIDFields parsed a user with colons that is no workload")
	}
}
