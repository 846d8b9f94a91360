package approval

import (
	"slices"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Tally is the standing of a request's reviews under pull-request rules.
type Tally struct {
	// Approvers are the distinct reviewers, never the requester, whose
	// latest approving-or-blocking review is an APPROVE, in approval order.
	Approvers []string
	// Blockers are the reviewers whose latest such review is REQUEST_CHANGES.
	Blockers []string
}

// TallyReviews applies the rules of SPEC section 2 to r's reviews: a
// COMMENT changes nobody's standing, a reviewer's later APPROVE clears their
// own REQUEST_CHANGES and vice versa, dismissed reviews (earlier than an
// edit) do not count, and the requester never counts.
func TallyReviews(r *ca.Request) Tally {
	latest := map[string]string{}
	var order []string
	for _, rv := range r.Reviews {
		if rv.Dismissed || rv.Reviewer == r.Requester {
			continue
		}
		if rv.Event != ca.ReviewApprove && rv.Event != ca.ReviewRequestChanges {
			continue
		}
		if _, seen := latest[rv.Reviewer]; !seen {
			order = append(order, rv.Reviewer)
		}
		latest[rv.Reviewer] = rv.Event
	}
	var t Tally
	for _, who := range order {
		switch latest[who] {
		case ca.ReviewApprove:
			t.Approvers = append(t.Approvers, who)
		case ca.ReviewRequestChanges:
			t.Blockers = append(t.Blockers, who)
		}
	}
	return t
}

// Satisfied reports whether the tally approves a request that needs n
// approvals.
func (t Tally) Satisfied(n int) bool { return len(t.Blockers) == 0 && len(t.Approvers) >= n }

// onlyMembers keeps the approvers for whom keep returns true.
func onlyMembers(approvers []string, keep func(string) bool) []string {
	return slices.DeleteFunc(slices.Clone(approvers), func(a string) bool { return !keep(a) })
}
