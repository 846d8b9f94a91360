package approval_test

import (
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the zone tests run the same on a machine without tzdata

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
)

func TestParseHours(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(day, h, m int) time.Time { return time.Date(2025, 6, day, h, m, 0, 0, time.UTC) } // June 2 2025 is a Monday
	type probe struct {
		at   time.Time
		want bool
	}
	tests := []struct {
		spec   string
		probes []probe
	}{
		{"Mon-Fri 07:00-20:00 UTC", []probe{
			{utc(2, 7, 0), true},   // Monday, opening minute
			{utc(2, 6, 59), false}, // Monday, a minute early
			{utc(6, 19, 59), true}, // Friday, last minute
			{utc(6, 20, 0), false}, // Friday, end is exclusive
			{utc(7, 10, 0), false}, // Saturday
			{utc(8, 10, 0), false}, // Sunday
			{utc(4, 12, 0), true},  // Wednesday noon
			{utc(2, 8, 30).In(time.FixedZone("CEST", 2*3600)), true}, // same instant in another zone
			{time.Date(2025, 6, 2, 8, 30, 0, 0, berlin), false},      // 06:30 UTC
		}},
		{"Sat,Sun 00:00-24:00", []probe{
			{utc(7, 0, 0), true},    // Saturday midnight
			{utc(8, 23, 59), true},  // Sunday, last minute
			{utc(9, 0, 0), false},   // Monday midnight
			{utc(6, 23, 59), false}, // Friday night
		}},
		{"Fri-Mon 22:00-23:00 Europe/Berlin", []probe{
			{time.Date(2025, 6, 6, 22, 30, 0, 0, berlin), true},    // Friday
			{time.Date(2025, 6, 7, 22, 0, 0, 0, berlin), true},     // Saturday
			{time.Date(2025, 6, 8, 22, 59, 0, 0, berlin), true},    // Sunday
			{time.Date(2025, 6, 9, 22, 15, 0, 0, berlin), true},    // Monday: the range wraps the week
			{time.Date(2025, 6, 10, 22, 30, 0, 0, berlin), false},  // Tuesday
			{time.Date(2025, 6, 5, 22, 30, 0, 0, berlin), false},   // Thursday
			{time.Date(2025, 6, 6, 23, 0, 0, 0, berlin), false},    // Friday, end is exclusive
			{time.Date(2025, 6, 6, 21, 59, 0, 0, berlin), false},   // Friday, early
			{utc(6, 20, 30), true},                                 // 22:30 CEST is 20:30 UTC
			{utc(6, 22, 30), false},                                // 22:30 UTC is 00:30 Saturday in Berlin
			{time.Date(2025, 1, 10, 21, 30, 0, 0, time.UTC), true}, // winter: 22:30 CET is 21:30 UTC
		}},
		{"mon 09:00-17:00", []probe{ // lower case, one day, UTC by default
			{utc(2, 9, 0), true},
			{utc(3, 9, 0), false},
		}},
		{"Mon,Wed,Sat-Sun 09:00-10:00 America/New_York", []probe{
			{time.Date(2025, 6, 2, 9, 30, 0, 0, newYork), true},
			{time.Date(2025, 6, 3, 9, 30, 0, 0, newYork), false},
			{time.Date(2025, 6, 4, 9, 30, 0, 0, newYork), true},
			{time.Date(2025, 6, 5, 9, 30, 0, 0, newYork), false},
			{time.Date(2025, 6, 7, 9, 30, 0, 0, newYork), true},
			{time.Date(2025, 6, 8, 9, 30, 0, 0, newYork), true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			h, err := approval.ParseHours(tt.spec)
			if err != nil {
				t.Fatalf("ParseHours(%q) = %v", tt.spec, err)
			}
			if h.String() != tt.spec {
				t.Errorf("String() = %q, want %q", h.String(), tt.spec)
			}
			for _, p := range tt.probes {
				if got := h.Contains(p.at); got != p.want {
					t.Errorf("Contains(%s, %s) = %v, want %v", p.at.Weekday(), p.at.Format(time.RFC3339), got, p.want)
				}
			}
		})
	}
}

func TestParseHoursRefuses(t *testing.T) {
	for _, spec := range []string{
		"",
		"Mon-Fri",
		"07:00-20:00",
		"Mon-Fri 07:00-20:00 UTC extra",
		"Funday 07:00-20:00",
		"Mon-Fun 07:00-20:00",
		"Mon- 07:00-20:00",
		"Mon,,Tue 07:00-20:00",
		"Monday-Friday 07:00-20:00",
		"Mon-Fri 0700-2000",
		"Mon-Fri 07:00",
		"Mon-Fri 07:00-",
		"Mon-Fri 20:00-07:00", // overnight windows are not supported
		"Mon-Fri 07:00-07:00",
		"Mon-Fri 07:00-25:00",
		"Mon-Fri 07:60-20:00",
		"Mon-Fri 24:00-24:00",
		"Mon-Fri 07:00-20:00 Mars/Olympus_Mons",
		"Mon-Fri 07:00-20:00 +0200",
		"Mon-Fri 07:00-20:00 Local", // the server's zone: the policy would move with the machine
	} {
		t.Run(spec, func(t *testing.T) {
			if h, err := approval.ParseHours(spec); err == nil {
				t.Errorf("ParseHours(%q) = %v, nil; want an error", spec, h)
			}
		})
	}
}

func TestPolicyProfileAndDefaults(t *testing.T) {
	p := &approval.Policy{Group: "prod-db", Principals: []string{"prod-db", "dba"}, CertTTL: 5 * time.Minute,
		Extensions: []string{"permit-pty"}, SourceAddress: []string{"10.0.0.0/8"}, MaxDuration: 2 * time.Hour}
	got := p.Profile()
	want := ca.Profile{Principals: []string{"prod-db", "dba"}, CertTTL: 5 * time.Minute, Extensions: []string{"permit-pty"}, SourceAddress: []string{"10.0.0.0/8"}}
	if !slices.Equal(got.Principals, want.Principals) || got.CertTTL != want.CertTTL ||
		!slices.Equal(got.Extensions, want.Extensions) || !slices.Equal(got.SourceAddress, want.SourceAddress) {
		t.Errorf("Profile = %+v, want %+v", got, want)
	}
	for _, tt := range []struct{ max, want time.Duration }{
		{2 * time.Hour, time.Hour},
		{time.Hour, time.Hour},
		{20 * time.Minute, 20 * time.Minute},
	} {
		p.MaxDuration = tt.max
		if got := p.DefaultDuration(); got != tt.want {
			t.Errorf("DefaultDuration with max_duration %s = %s, want %s", tt.max, got, tt.want)
		}
	}
}

func TestCreateAllowedHours(t *testing.T) {
	tests := []struct {
		name     string
		at       time.Time
		wantCode string
	}{
		{"Monday 10:00", time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC), ""},
		{"Monday 07:00", time.Date(2025, 6, 2, 7, 0, 0, 0, time.UTC), ""},
		{"Monday 06:59", time.Date(2025, 6, 2, 6, 59, 0, 0, time.UTC), "outside_allowed_hours"},
		{"Friday 20:00", time.Date(2025, 6, 6, 20, 0, 0, 0, time.UTC), "outside_allowed_hours"},
		{"Saturday 10:00", time.Date(2025, 6, 7, 10, 0, 0, 0, time.UTC), "outside_allowed_hours"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.clk.set(tt.at)
			_, err := e.svc.Create(t.Context(), "alice", "office", time.Hour, "maintenance")
			if tt.wantCode == "" {
				checkErr(t, err, nil, "")
				return
			}
			checkErr(t, err, approval.ErrForbidden, tt.wantCode)
			// Groups without a window are not affected.
			if _, err := e.svc.Create(t.Context(), "alice", "staging", time.Minute, "maintenance"); err != nil {
				t.Errorf("staging (no allowed_hours) at %s: %v", tt.at, err)
			}
		})
	}
}
