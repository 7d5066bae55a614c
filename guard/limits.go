package guard

import (
	"errors"
	"fmt"
	"math"
)

// Limits are the guardrails of one agent, from its roles' configuration
// (roles.<name>.limits). A zero field means no limit of that kind.
type Limits struct {
	// RequestsPerSecond is the sustained request rate.
	RequestsPerSecond float64
	// Burst is how many requests may arrive at once above the rate. Zero
	// with a rate set means max(1, ceil(RequestsPerSecond)).
	Burst int
	// PatientsPerHour caps the distinct patients whose data the agent may
	// receive in any sliding hour.
	PatientsPerHour int
	// ResourcesPerResponse caps the resources in one response.
	ResourcesPerResponse int
	// BulkCallsPerDay caps $everything and bulk-export calls in any rolling
	// 24 hours.
	BulkCallsPerDay int
}

// Validate reports every field that is negative or not a finite number, for
// configuration checks. The guard itself treats such values as "refuse".
func (l Limits) Validate() error {
	var errs []error
	if math.IsNaN(l.RequestsPerSecond) || math.IsInf(l.RequestsPerSecond, 0) || l.RequestsPerSecond < 0 {
		errs = append(errs, fmt.Errorf("requests_per_second %v must be a number >= 0", l.RequestsPerSecond))
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"burst", l.Burst},
		{"patients_per_hour", l.PatientsPerHour},
		{"resources_per_response", l.ResourcesPerResponse},
		{"bulk_calls_per_day", l.BulkCallsPerDay},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d must be >= 0", f.name, f.v))
		}
	}
	if l.Burst > 0 && l.RequestsPerSecond == 0 {
		errs = append(errs, errors.New("burst is set but requests_per_second is not: burst alone limits nothing"))
	}
	return errors.Join(errs...)
}

// Strictest combines the limits of an agent's roles: for each field, the
// smallest non-zero value (zero means unlimited, so it only wins when every
// role leaves the field unlimited). Negative and NaN values count as the
// strictest possible (refuse), so a configuration mistake never widens.
func Strictest(ls ...Limits) Limits {
	var out Limits
	for i, l := range ls {
		if i == 0 {
			out = l
			continue
		}
		out.RequestsPerSecond = stricterFloat(out.RequestsPerSecond, l.RequestsPerSecond)
		out.Burst = stricterInt(out.Burst, l.Burst)
		out.PatientsPerHour = stricterInt(out.PatientsPerHour, l.PatientsPerHour)
		out.ResourcesPerResponse = stricterInt(out.ResourcesPerResponse, l.ResourcesPerResponse)
		out.BulkCallsPerDay = stricterInt(out.BulkCallsPerDay, l.BulkCallsPerDay)
	}
	return out
}

func stricterInt(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

func stricterFloat(a, b float64) float64 {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return -1
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return math.Min(a, b)
}

// burst is the effective burst of a rate limit.
func (l Limits) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(1, int(math.Ceil(l.RequestsPerSecond)))
}
