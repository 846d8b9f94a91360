package approval

import (
	"context"

	"github.com/jit-ssh/jit-ssh/ca"
)

// ListEvents calls fn for each event matching f that login may read, in log
// order, streaming. Auditors read the whole log; others their own story:
// what they did and what happened to their requests (f.Involving), and a
// non-auditor filtering on another actor is refused before anything is
// listed. It needs WithLedger.
func (a *Authority) ListEvents(ctx context.Context, login string, f ca.EventFilter, fn func(*ca.Event) error) error {
	narrow, err := a.auditorOrOwn(ctx, login, f.Actor, "only auditors may read other users' events")
	if err != nil {
		return err
	}
	if narrow {
		f.Involving = login
	}
	return a.audit.ListEvents(ctx, f, fn)
}

// Verify checks the ledger's integrity for an auditor. A broken row is
// reported as the ledger reports it: a *ChainError naming the row, with the
// counts of what was checked. It needs WithLedger.
func (a *Authority) Verify(ctx context.Context, login string) (ca.VerifyResult, error) {
	if err := a.requireAuditor(ctx, login); err != nil {
		return ca.VerifyResult{}, err
	}
	return a.audit.Verify(ctx)
}

// Report computes the ledger's figures for an auditor over the requests
// created since since (an RFC 3339 time, or empty for all time; see
// ParseTime), open grants counted now. Only an auditor's since is read, so
// nobody else learns anything from how it is checked. It needs WithLedger.
func (a *Authority) Report(ctx context.Context, login, since string) (*ca.Report, error) {
	if err := a.requireAuditor(ctx, login); err != nil {
		return nil, err
	}
	t, err := ParseTime("since", since)
	if err != nil {
		return nil, err
	}
	return a.audit.Report(ctx, t, a.now())
}

// BreakGlassCounts returns, by host group, the break-glass grants recorded
// and the follow-ups overdue now, for the server's metrics: counts by host
// group only, nothing about people, so no caller is checked. Every group
// whose policy allows break glass is present (zero until used), so an
// alert on the overdue count has a series to watch. It needs WithLedger.
func (a *Authority) BreakGlassCounts(ctx context.Context) (map[string]ca.BreakGlassCount, error) {
	counts, err := a.audit.BreakGlassCounts(ctx, a.now())
	if err != nil {
		return nil, err
	}
	for g, p := range a.svc.policies {
		if _, ok := counts[g]; !ok && p.BreakGlass != nil {
			counts[g] = ca.BreakGlassCount{}
		}
	}
	return counts, nil
}
