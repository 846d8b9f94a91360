package config

import (
	"strings"
	"testing"
	"time"
)

// bgBase is base with a valid break_glass block.
const bgBase = base + `    break_glass:
      teams: [backend]
      max_duration: 30m
      review_within: 24h
      reason_pattern: '^INC-[0-9]+'
`

func TestBreakGlassConfig(t *testing.T) {
	_, comp, err := Parse([]byte(bgBase))
	if err != nil {
		t.Fatalf("break_glass config: %v", err)
	}
	bg := comp.Policies[0].BreakGlass
	if bg == nil || len(bg.Teams) != 1 || bg.Teams[0] != "backend" || bg.MaxDuration != 30*time.Minute ||
		bg.ReviewWithin != 24*time.Hour || bg.ReasonPattern == nil || !bg.ReasonPattern.MatchString("INC-42: x") || bg.ReasonPattern.MatchString("x INC-42") {
		t.Fatalf("compiled break_glass = %+v", bg)
	}
	if _, comp, _ := Parse([]byte(base)); comp.Policies[0].BreakGlass != nil {
		t.Errorf("a group without break_glass compiled one")
	}
	const at = "host_groups.prod-db.break_glass"
	tests := []struct {
		name, old, new, path, mention string
	}{
		{"team not a requester", "      teams: [backend]", "      teams: [oncall]", at + ".teams[0]", "requesters"},
		{"bad team", "      teams: [backend]", "      teams: [On Call]", at + ".teams[0]", "team slug"},
		{"no teams", "      teams: [backend]", "      teams: []", at + ".teams", "at least one"},
		{"teams missing", "      teams: [backend]\n", "", at + ".teams", "at least one"},
		{"over the group's max_duration", "max_duration: 30m\n      review", "max_duration: 2h\n      review", at + ".max_duration", "group's max_duration"},
		{"max_duration missing", "      max_duration: 30m\n", "", at + ".max_duration", "between"},
		{"max_duration too short", "max_duration: 30m\n      review", "max_duration: 10s\n      review", at + ".max_duration", "between"},
		{"review_within missing", "      review_within: 24h\n", "", at + ".review_within", "between"},
		{"review_within too short", "review_within: 24h", "review_within: 5m", at + ".review_within", "between"},
		{"review_within too long", "review_within: 24h", "review_within: 1000h", at + ".review_within", "between"},
		{"review_within not a duration", "review_within: 24h", "review_within: tomorrow", at + ".review_within", "tomorrow"},
		{"pattern does not compile", "'^INC-[0-9]+'", "'^INC-[0-9+'", at + ".reason_pattern", "regular expression"},
		{"unknown key", "review_within: 24h", "review_within: 24h\n      approvers: [x]", at + ".approvers", "unknown"},
		{"not a mapping", "    break_glass:\n      teams: [backend]\n      max_duration: 30m\n      review_within: 24h\n      reason_pattern: '^INC-[0-9]+'\n", "    break_glass: yes\n", at, "mapping"},
		{"no approvers to review", "    approvers: [sre-leads]\n    approvals_required: 1\n", "    approvals_required: 0\n", at, "follow-up review"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(bgBase, tt.old) {
				t.Fatalf("bgBase has no %q", tt.old)
			}
			ps := problems(t, parseErr(t, []byte(strings.Replace(bgBase, tt.old, tt.new, 1))))
			p := problemAt(ps, tt.path)
			if p == "" {
				t.Fatalf("no problem at %s; problems:\n%s", tt.path, strings.Join(ps, "\n"))
			}
			if !strings.Contains(p, tt.mention) {
				t.Errorf("problem %q does not mention %q", p, tt.mention)
			}
		})
	}
}
