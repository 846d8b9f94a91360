package approval

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Policy is one host group's rules, compiled once at configuration load.
type Policy struct {
	Group             string
	Principals        []string
	Requesters        []string // teams whose members may request
	Approvers         []string // teams whose members may approve
	ApprovalsRequired int      // 0 = auto-approve for requesters
	MaxDuration       time.Duration
	CertTTL           time.Duration
	Extensions        []string
	SourceAddress     []string
	AllowedHours      *Hours // nil = any time
	// Workloads are the CI jobs (GitHub Actions) that may request the
	// group, besides the members of Requesters; their requests need the
	// same approvals.
	Workloads []WorkloadRule
	// BreakGlass is the group's break-glass policy; nil = no break glass.
	BreakGlass *BreakGlassPolicy
}

// BreakGlassPolicy says who may take a grant of a group without an approver
// in an emergency, for how long, and how soon an approver must review it
// afterwards (SPEC section 4c).
type BreakGlassPolicy struct {
	// Teams may break glass; each is also a requester team of the group.
	Teams []string
	// MaxDuration caps a break-glass grant (and is its default length).
	MaxDuration time.Duration
	// ReviewWithin is how soon after the grant starts its follow-up
	// review is due.
	ReviewWithin time.Duration
	// ReasonPattern, when set, must match the reason (for example an
	// incident number).
	ReasonPattern *regexp.Regexp
}

// Bounds of a break_glass policy.
const (
	MinReviewWithin = time.Hour
	MaxReviewWithin = 30 * 24 * time.Hour
)

// Profile returns the certificate profile of the group.
func (p *Policy) Profile() ca.Profile {
	return ca.Profile{Principals: p.Principals, CertTTL: p.CertTTL, Extensions: p.Extensions, SourceAddress: p.SourceAddress}
}

// DefaultDuration is the grant length when a request names none: an hour,
// or the group's maximum if that is shorter.
func (p *Policy) DefaultDuration() time.Duration { return min(time.Hour, p.MaxDuration) }

// Hours is a weekly window such as "Mon-Fri 07:00-20:00 UTC".
type Hours struct {
	days       [7]bool // indexed by time.Weekday
	start, end int     // minutes after midnight, end exclusive
	loc        *time.Location
	text       string
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseHours parses "DAYS HH:MM-HH:MM [ZONE]" where DAYS is a day, a range
// ("Mon-Fri") or a comma list ("Mon,Wed,Sat-Sun"), and ZONE an IANA name
// (default UTC).
func ParseHours(s string) (*Hours, error) {
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return nil, fmt.Errorf(`want "Mon-Fri 07:00-20:00 UTC", got %q`, s)
	}
	h := &Hours{loc: time.UTC, text: s}
	for _, part := range strings.Split(strings.ToLower(f[0]), ",") {
		a, b, isRange := strings.Cut(part, "-")
		from, ok1 := weekdays[a]
		to, ok2 := from, true
		if isRange {
			to, ok2 = weekdays[b]
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("unknown day in %q (use Mon Tue Wed Thu Fri Sat Sun)", f[0])
		}
		for d := from; ; d = (d + 1) % 7 {
			h.days[d] = true
			if d == to {
				break
			}
		}
	}
	a, b, ok := strings.Cut(f[1], "-")
	if !ok {
		return nil, fmt.Errorf("time range %q must be HH:MM-HH:MM", f[1])
	}
	var err error
	if h.start, err = clock(a); err != nil {
		return nil, err
	}
	if h.end, err = clock(b); err != nil {
		return nil, err
	}
	if h.end <= h.start {
		return nil, fmt.Errorf("time range %q must end after it starts", f[1])
	}
	if len(f) == 3 {
		if f[2] == "Local" {
			// The server's own zone would make the policy depend on where
			// it happens to run.
			return nil, fmt.Errorf("time zone %q depends on the server's machine; name the zone (e.g. Europe/Berlin or UTC)", f[2])
		}
		if h.loc, err = time.LoadLocation(f[2]); err != nil {
			return nil, fmt.Errorf("unknown time zone %q", f[2])
		}
	}
	return h, nil
}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * 60, nil
		}
		return 0, fmt.Errorf("time %q must be HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Contains reports whether t falls inside the window.
func (h *Hours) Contains(t time.Time) bool {
	t = t.In(h.loc)
	m := t.Hour()*60 + t.Minute()
	return h.days[t.Weekday()] && m >= h.start && m < h.end
}

func (h *Hours) String() string { return h.text }
