package guard

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

func TestStrictest(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Limits
		want Limits
	}{
		{"none", nil, Limits{}},
		{"one", []Limits{{RequestsPerSecond: 5, Burst: 10}}, Limits{RequestsPerSecond: 5, Burst: 10}},
		{"zero is unlimited", []Limits{{RequestsPerSecond: 5, PatientsPerHour: 0}, {RequestsPerSecond: 0, PatientsPerHour: 100}},
			Limits{RequestsPerSecond: 5, PatientsPerHour: 100}},
		{"smallest per field", []Limits{
			{RequestsPerSecond: 20, Burst: 40, PatientsPerHour: 200, ResourcesPerResponse: 50, BulkCallsPerDay: 3},
			{RequestsPerSecond: 10, Burst: 80, PatientsPerHour: 500, ResourcesPerResponse: 10, BulkCallsPerDay: 5},
			{RequestsPerSecond: 30, Burst: 20},
		}, Limits{RequestsPerSecond: 10, Burst: 20, PatientsPerHour: 200, ResourcesPerResponse: 10, BulkCallsPerDay: 3}},
		{"negative wins", []Limits{{PatientsPerHour: 10}, {PatientsPerHour: -1}}, Limits{PatientsPerHour: -1}},
	} {
		if got := Strictest(tc.in...); got != tc.want {
			t.Errorf("%s: Strictest = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got := Strictest(Limits{RequestsPerSecond: 5}, Limits{RequestsPerSecond: math.NaN()}); !(got.RequestsPerSecond < 0) {
		t.Errorf("NaN rate combined to %v, want a refusing value", got.RequestsPerSecond)
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		l    Limits
		want string // substring of the error; "" for valid
	}{
		{Limits{}, ""},
		{Limits{RequestsPerSecond: 20, Burst: 40, PatientsPerHour: 200, ResourcesPerResponse: 100, BulkCallsPerDay: 2}, ""},
		{Limits{RequestsPerSecond: -1}, "requests_per_second"},
		{Limits{RequestsPerSecond: math.Inf(1)}, "requests_per_second"},
		{Limits{RequestsPerSecond: 1, Burst: -1}, "burst"},
		{Limits{PatientsPerHour: -5}, "patients_per_hour"},
		{Limits{ResourcesPerResponse: -5}, "resources_per_response"},
		{Limits{BulkCallsPerDay: -5}, "bulk_calls_per_day"},
		{Limits{Burst: 5}, "burst alone"},
	} {
		err := tc.l.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.l, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one mentioning %q", tc.l, err, tc.want)
		}
	}
}

func TestBrokenLimitsRefuse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		g := b.guards(t, 1, Options{})[0]
		for _, l := range []Limits{{RequestsPerSecond: -1}, {RequestsPerSecond: math.NaN()}, {RequestsPerSecond: 5, Burst: -2}} {
			_, err := g.AllowRequest(ctx, "a", l)
			wantReason(t, "broken rate", err, fhir.ReasonRateLimited)
		}
		wantReason(t, "negative patients", g.AdmitPatients(ctx, "a", []string{"Patient/1"}, Limits{PatientsPerHour: -1}), fhir.ReasonPatientBudget)
		wantReason(t, "negative bulk", g.CountBulkCall(ctx, "a", Limits{BulkCallsPerDay: -1}), fhir.ReasonRateLimited)
		if full, err := g.PatientBudgetExhausted(ctx, "a", Limits{PatientsPerHour: -1}); !full || err != nil {
			t.Fatalf("negative budget exhausted = %v, %v", full, err)
		}
	})
}

func TestZeroLimitsAreUnlimited(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		g := b.guards(t, 1, Options{})[0]
		for i := range 200 {
			if _, err := g.AllowRequest(ctx, "a", Limits{}); err != nil {
				t.Fatal(err)
			}
			if err := g.AdmitPatients(ctx, "a", []string{"Patient/" + string(rune('A'+i%50))}, Limits{}); err != nil {
				t.Fatal(err)
			}
			if err := g.CountBulkCall(ctx, "a", Limits{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.CheckResources("a", 1_000_000, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCheckResources(t *testing.T) {
	g := newGuard(t, Options{})
	l := Limits{ResourcesPerResponse: 10}
	wantReason(t, "at cap", g.CheckResources("a", 10, l), "")
	wantReason(t, "over cap", g.CheckResources("a", 11, l), fhir.ReasonResourceCap)
	wantReason(t, "negative cap", g.CheckResources("a", 1, Limits{ResourcesPerResponse: -1}), fhir.ReasonResourceCap)
}

func TestNewValidatesOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"slow poll", Options{RevocationPoll: 2 * time.Second}},
		{"negative ttl", Options{LocalCacheTTL: -time.Second}},
		{"ttl shorter than polls", Options{LocalCacheTTL: 300 * time.Millisecond, RevocationPoll: 200 * time.Millisecond}},
		{"brace prefix", Options{KeyPrefix: "x{y}"}},
		{"negative timeout", Options{Timeout: -1}},
	} {
		if _, err := New(context.Background(), tc.opts); err == nil {
			t.Errorf("%s: New accepted %+v", tc.name, tc.opts)
		}
	}
}
