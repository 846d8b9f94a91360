package approval

import (
	"context"
	"slices"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Notifier hears about request lifecycle changes after they are committed
// to the ledger, so people can be told where they work (approval/notify
// posts them to a webhook). Notify must not block: the service calls it on
// the decision path. It cannot fail a decision; implementations handle
// their own errors.
type Notifier interface {
	Notify(ctx context.Context, n ca.Notification)
}

// WithNotifier sends committed request changes to n.
func WithNotifier(n Notifier) ServiceOption { return func(s *Service) { s.sink = n } }

// notify tells the notifier, if any, about a committed change of r.
func (s *Service) notify(ctx context.Context, kind, actor string, r *ca.Request, rv *ca.Review) {
	if s.sink == nil || r == nil {
		return
	}
	n := ca.Notification{Kind: kind, Actor: actor, Request: *r, Approvers: TallyReviews(r).Approvers}
	n.Request.Reviews = slices.Clone(r.Reviews)
	if rv != nil {
		c := *rv
		n.Review = &c
	}
	if p := s.policies[r.HostGroup]; p != nil {
		n.ApprovalsRequired, n.ApproverTeams = p.ApprovalsRequired, slices.Clone(p.Approvers)
	}
	s.sink.Notify(context.WithoutCancel(ctx), n)
}

// notifyReview tells the notifier about a committed review by login.
func (s *Service) notifyReview(ctx context.Context, login string, r *ca.Request) {
	if s.sink == nil || r == nil || len(r.Reviews) == 0 {
		return
	}
	var rv *ca.Review
	for i := len(r.Reviews) - 1; i >= 0; i-- {
		if r.Reviews[i].Reviewer == login {
			rv = &r.Reviews[i]
			break
		}
	}
	kind := ca.NotifyReviewed
	switch {
	case rv != nil && rv.Event == ca.ReviewDeny:
		kind = ca.NotifyDenied
	case rv != nil && rv.Event == ca.ReviewApprove && r.State == ca.StateApproved:
		kind = ca.NotifyApproved
	}
	s.notify(ctx, kind, login, r, rv)
}
