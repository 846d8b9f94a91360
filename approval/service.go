package approval

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Store is what the service needs from the ledger.
type Store interface {
	// ApplyRequestChange commits one change of a request with its events,
	// failing with ca.ErrConflict when the request moved on since it was
	// read.
	ApplyRequestChange(ctx context.Context, ch ca.RequestChange) error
	// GetRequest returns one request, or an error wrapping ca.ErrNotFound.
	GetRequest(ctx context.Context, id string) (*ca.Request, error)
	// ListRequests returns the requests f selects, newest first.
	ListRequests(ctx context.Context, f ca.RequestFilter) ([]*ca.Request, error)
	// RecordEvent appends one event that changes no request: the service
	// records refused decisions with it (see RecordRefusal).
	RecordEvent(ctx context.Context, ev ca.Event) error
}

// Limits on free text.
const (
	MaxReasonLen = 1000
	MaxBodyLen   = 4000
)

// DefaultPendingTTL is how long a request may wait for review.
const DefaultPendingTTL = 24 * time.Hour

// Service is the policy decision point: every request, review and grant
// decision is taken here, with its reason. Its methods are grouped by
// topic: access.go (who is who), requests.go (the request lifecycle),
// reviews.go (the review rules), grants.go (issuance decisions),
// breakglass.go (emergency grants and their follow-up),
// sweeps.go (recording expiry and the end of grants), watch.go (long
// polling), notify.go and refusals.go (telling people and the ledger).
type Service struct {
	store      Store
	dir        Directory
	workloads  WorkloadVerifier // nil: workload tokens are refused
	policies   map[string]*Policy
	auditors   []string
	admins     []string
	now        func() time.Time
	rand       io.Reader
	pendingTTL time.Duration
	log        *slog.Logger
	watch      watchers       // long-polling waiters, by request
	sink       Notifier       // told about committed changes; nil = nobody
	refusals   refusalCounter // identical refusals being counted
	signInHint string         // "; " + WithSignInHint's hint, or ""
}

// ServiceOption configures a Service.
type ServiceOption func(*Service)

// WithClock sets the clock; nil means time.Now.
func WithClock(now func() time.Time) ServiceOption { return func(s *Service) { s.now = now } }

// WithPendingTTL sets how long a request may stay pending before it expires.
func WithPendingTTL(d time.Duration) ServiceOption { return func(s *Service) { s.pendingTTL = d } }

// WithSignInHint adds hint to the refusals of a missing or unknown token
// (after "; "): the dev server names its demo tokens there.
func WithSignInHint(hint string) ServiceOption {
	return func(s *Service) {
		if hint != "" {
			s.signInHint = "; " + hint
		}
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) ServiceOption { return func(s *Service) { s.log = l } }

// NewService returns a Service over st and dir with the given host-group
// policies and auditor teams.
func NewService(st Store, dir Directory, policies []*Policy, auditors []string, opts ...ServiceOption) *Service {
	s := &Service{
		store: st, dir: dir, policies: map[string]*Policy{}, auditors: slices.Clone(auditors),
		now: time.Now, rand: rand.Reader, pendingTTL: DefaultPendingTTL, log: slog.New(slog.DiscardHandler),
	}
	for _, p := range policies {
		s.policies[p.Group] = p
	}
	for _, o := range opts {
		o(s)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Policy returns the policy of group, or nil.
func (s *Service) Policy(group string) *Policy { return s.policies[group] }

// Groups returns the configured host groups, sorted.
func (s *Service) Groups() []string {
	out := make([]string, 0, len(s.policies))
	for g := range s.policies {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// policy returns the policy of group, refusing a malformed or unknown
// group.
func (s *Service) policy(group string) (*Policy, error) {
	if err := ca.CheckGroup(group); err != nil {
		return nil, newErr(ErrInvalid, CodeInvalidHostGroup, "%q is not a valid host group name", group)
	}
	p := s.policies[group]
	if p == nil {
		return nil, newErr(ErrNotFound, CodeUnknownHostGroup, "unknown host group %q (known: %s)", group, strings.Join(s.Groups(), ", "))
	}
	return p, nil
}

func (s *Service) newID() (string, error) {
	var b [10]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("approval: request id: %w", err)
	}
	return "r-" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:])), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
