package ca

import (
	"fmt"
	"strings"
	"time"
)

// Workload is the verified identity of a CI job: the claims of a GitHub
// Actions OIDC token that the policy matches and the ledger records. Every
// field has passed CheckWorkload, so the ones that reach a KeyId
// (Repository, RunID) hold no character that could forge a KeyId field.
type Workload struct {
	Repository  string    // owner/name
	Ref         string    // refs/heads/main
	Environment string    // the job's deployment environment, "" for none
	RunID       string    // the workflow run, decimal
	RunAttempt  string    // the run's attempt, decimal ("" if absent)
	Workflow    string    // the workflow's name
	SHA         string    // the commit
	Actor       string    // who started the run
	Subject     string    // the token's sub, as the issuer wrote it
	TokenID     string    // the token's jti
	Expiry      time.Time // the token's exp
}

// WorkloadPrefix starts every workload requester name: a login never has a
// colon, so no person's login can be mistaken for a workload's.
const WorkloadPrefix = "gha:"

// Requester is the name a workload requests and holds grants as, and the
// user of its certificates' KeyIds: gha:<owner>/<repo>:run=<run id>. A
// grant so belongs to one workflow run.
func (w Workload) Requester() string {
	return WorkloadPrefix + w.Repository + ":run=" + w.RunID
}

// Identity is the workload identity of GitHub's default subject:
// repo:<owner>/<repo>:environment:<env> for a job with an environment,
// else repo:<owner>/<repo>:ref:<ref>.
func (w Workload) Identity() string {
	if w.Environment != "" {
		return "repo:" + w.Repository + ":environment:" + w.Environment
	}
	return "repo:" + w.Repository + ":ref:" + w.Ref
}

// Describe is a one-line account of the run for reasons and refusals.
func (w Workload) Describe() string {
	s := fmt.Sprintf("GitHub Actions run %s of %s (workflow %q, ref %s", w.RunID, w.Repository, w.Workflow, w.Ref)
	if w.Environment != "" {
		s += ", environment " + w.Environment
	}
	if w.SHA != "" {
		s += ", commit " + w.SHA
	}
	if w.Actor != "" {
		s += ", started by " + w.Actor
	}
	return s + ")"
}

// Bounds of the workload claims that are not names.
const (
	maxRepoName  = 100 // GitHub's limit on a repository name
	maxRunID     = 19  // digits: an int64
	maxClaimText = 255 // ref, environment, workflow, actor, sha, sub
)

// CheckWorkload returns an error unless every claim of w is well formed:
// Repository is <owner>/<name> with owner a valid login and name of
// letters, digits, '.', '_' and '-' (not "." or ".."); RunID (and
// RunAttempt, if set) decimal; Ref non-empty; and every other claim
// printable ASCII of at most 255 bytes.
func CheckWorkload(w Workload) error {
	if err := checkRepository(w.Repository); err != nil {
		return err
	}
	if !validDecimal(w.RunID) {
		return fmt.Errorf("%w: run id %q", ErrInvalidName, w.RunID)
	}
	if w.RunAttempt != "" && !validDecimal(w.RunAttempt) {
		return fmt.Errorf("%w: run attempt %q", ErrInvalidName, w.RunAttempt)
	}
	if w.Ref == "" {
		return fmt.Errorf("%w: empty ref", ErrInvalidName)
	}
	for name, v := range map[string]string{"ref": w.Ref, "environment": w.Environment, "workflow": w.Workflow,
		"sha": w.SHA, "actor": w.Actor, "sub": w.Subject, "jti": w.TokenID} {
		if !validClaimText(v) {
			return fmt.Errorf("%w: %s claim is not printable ASCII of at most %d bytes", ErrInvalidName, name, maxClaimText)
		}
	}
	return nil
}

// CheckRepository returns an error unless s is a GitHub repository's full
// name, <owner>/<name>: owner a valid login, name letters, digits, '.',
// '_' and '-' (not "." or "..", at most 100).
func CheckRepository(s string) error { return checkRepository(s) }

func checkRepository(s string) error {
	owner, name, ok := strings.Cut(s, "/")
	if !ok || !validLogin(owner) || !validRepoName(name) {
		return fmt.Errorf("%w: repository %q", ErrInvalidName, s)
	}
	return nil
}

func validRepoName(s string) bool {
	if len(s) == 0 || len(s) > maxRepoName || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && !isPunct(s[i]) {
			return false
		}
	}
	return true
}

func validDecimal(s string) bool {
	if len(s) == 0 || len(s) > maxRunID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func validClaimText(s string) bool {
	if len(s) > maxClaimText {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// IsWorkloadRequester reports whether s names a workload (see
// Workload.Requester) rather than a person: it starts with WorkloadPrefix.
// It does not check the rest (CheckRequester does).
func IsWorkloadRequester(s string) bool { return strings.HasPrefix(s, WorkloadPrefix) }

// CheckRequester returns an error unless s is a valid login or a valid
// workload requester name, gha:<owner>/<repo>:run=<digits>.
func CheckRequester(s string) error {
	if !IsWorkloadRequester(s) {
		return CheckLogin(s)
	}
	repo, run, ok := strings.Cut(strings.TrimPrefix(s, WorkloadPrefix), ":run=")
	if !ok || checkRepository(repo) != nil || !validDecimal(run) {
		return fmt.Errorf("%w: workload %q", ErrInvalidName, s)
	}
	return nil
}
