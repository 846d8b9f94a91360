package config

import (
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/ca/api"
)

func TestLimitsConfig(t *testing.T) {
	base := string(readFixture(t, "spec-example.yaml"))
	tests := []struct {
		name  string
		block string
		want  api.Limits
	}{
		{"defaults", "", api.Limits{Requests: api.Rate{PerMinute: 10, Burst: 5}, Certificates: api.Rate{PerMinute: 30, Burst: 10}, Writes: api.Rate{PerMinute: 120, Burst: 60}}},
		{"set", "limits:\n  requests: {per_minute: 2, burst: 1}\n  certificates: {per_minute: 120, burst: 40}\n  writes: {per_minute: 30, burst: 20}\n",
			api.Limits{Requests: api.Rate{PerMinute: 2, Burst: 1}, Certificates: api.Rate{PerMinute: 120, Burst: 40}, Writes: api.Rate{PerMinute: 30, Burst: 20}}},
		{"one key only", "limits:\n  certificates: {burst: 3}\n",
			api.Limits{Requests: api.Rate{PerMinute: 10, Burst: 5}, Certificates: api.Rate{PerMinute: 30, Burst: 3}, Writes: api.Rate{PerMinute: 120, Burst: 60}}},
		{"off", "limits:\n  requests: {per_minute: 0}\n",
			api.Limits{Requests: api.Rate{PerMinute: 0, Burst: 5}, Certificates: api.Rate{PerMinute: 30, Burst: 10}, Writes: api.Rate{PerMinute: 120, Burst: 60}}},
		{"writes off", "limits:\n  writes: {per_minute: 0}\n",
			api.Limits{Requests: api.Rate{PerMinute: 10, Burst: 5}, Certificates: api.Rate{PerMinute: 30, Burst: 10}, Writes: api.Rate{PerMinute: 0, Burst: 60}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, comp, err := Parse([]byte(base + tt.block))
			if err != nil {
				t.Fatal(err)
			}
			if got := comp.Limits; got != tt.want {
				t.Fatalf("limits %+v, want %+v", got, tt.want)
			}
		})
	}
	if got, want := mustParse(t, base).Limits, api.DefaultLimits(); got != want {
		t.Errorf("config defaults %+v, want api.DefaultLimits %+v", got, want)
	}
	dev, err := Dev(t.TempDir(), "127.0.0.1:0").Validate()
	if err != nil {
		t.Fatal(err)
	}
	if got := dev.Limits; got.Requests.PerMinute != 0 || got.Certificates.PerMinute != 0 || got.Writes.PerMinute != 0 {
		t.Fatalf("dev mode limits %+v, want none", got)
	}
}

func TestLimitsConfigProblems(t *testing.T) {
	base := string(readFixture(t, "spec-example.yaml"))
	tests := []struct{ block, path, want string }{
		{"limits:\n  requests: {per_minute: -1}\n", "limits.requests.per_minute", "between 0"},
		{"limits:\n  requests: {per_minute: 100000}\n", "limits.requests.per_minute", "between 0"},
		{"limits:\n  certificates: {burst: 0}\n", "limits.certificates.burst", "between 1"},
		{"limits:\n  certificates: {burst: 5000}\n", "limits.certificates.burst", "between 1"},
		{"limits:\n  writes: {per_minute: -1}\n", "limits.writes.per_minute", "between 0"},
		{"limits:\n  writes: {burst: 0}\n", "limits.writes.burst", "between 1"},
		{"limits:\n  requests: {per_minute: ten}\n", "limits.requests.per_minute", "whole number"},
		{"limits:\n  requests: {rate: 5}\n", "limits.requests.rate", "unknown key"},
		{"limits: 5\n", "limits", "mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, _, err := Parse([]byte(base + tt.block))
			p := problemAt(problems(t, err), tt.path)
			if !strings.Contains(p, tt.want) {
				t.Fatalf("problem at %s = %q, want it to say %q; all: %v", tt.path, p, tt.want, err)
			}
		})
	}
	// Every problem is reported at once.
	_, _, err := Parse([]byte(base + "limits:\n  requests: {per_minute: -1, burst: 0}\n  certificates: {per_minute: -1, burst: 0}\n"))
	ps := problems(t, err)
	for _, path := range []string{"limits.requests.per_minute", "limits.requests.burst", "limits.certificates.per_minute", "limits.certificates.burst"} {
		if problemAt(ps, path) == "" {
			t.Errorf("no problem reported at %s; got %v", path, ps)
		}
	}
}

// mustParse returns what the config text compiles to, failing the test if
// it has problems.
func mustParse(t *testing.T, text string) *Compiled {
	t.Helper()
	_, comp, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return comp
}
