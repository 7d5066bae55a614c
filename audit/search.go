package audit

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// searchParams are the AuditEvent search parameters the auditor API
// understands (a subset of FHIR R4 AuditEvent search and IHE ITI-81).
// Anything else is refused: an ignored filter would return more than the
// auditor asked for.
var searchParams = []string{"date", "agent", "patient", "entity", "subtype", "action", "outcome", "_count", "_sort", "_cursor"}

const (
	defaultCount = 50
	maxCount     = 1000
)

// parseSearch turns query parameters into a store Query. Values of one
// parameter separated by commas are ORed; repeated parameters are ANDed.
func parseSearch(v url.Values) (Query, error) {
	q := Query{Desc: true, Limit: defaultCount}
	for k := range v {
		if !slices.Contains(searchParams, k) {
			return q, fhir.Errorf(fhir.ReasonRequestInvalid, "unsupported search parameter %q", k)
		}
	}
	for _, raw := range v["date"] {
		if err := applyDate(&q, raw); err != nil {
			return q, err
		}
	}
	groups := []struct {
		key  string
		norm func(string) (string, error)
	}{
		{"agent", normAgent},
		{"patient", normPatient},
		{"entity", normNonEmpty},
		{"subtype", normNonEmpty},
		{"action", normAction},
		{"outcome", normOutcome},
	}
	for _, g := range groups {
		for _, raw := range v[g.key] {
			rg := RefGroup{Key: g.key}
			for _, part := range strings.Split(raw, ",") {
				n, err := g.norm(part)
				if err != nil {
					return q, fhir.Errorf(fhir.ReasonRequestInvalid, "%s: %v", g.key, err)
				}
				rg.Values = append(rg.Values, n)
			}
			q.Refs = append(q.Refs, rg)
		}
	}
	if c := v.Get("_count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return q, fhir.Errorf(fhir.ReasonRequestInvalid, "_count must be a positive integer")
		}
		q.Limit = min(n, maxCount)
	}
	switch v.Get("_sort") {
	case "", "-date":
	case "date":
		q.Desc = false
	default:
		return q, fhir.Errorf(fhir.ReasonRequestInvalid, "_sort supports date and -date only")
	}
	if c := v.Get("_cursor"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 1 {
			return q, fhir.Errorf(fhir.ReasonRequestInvalid, "_cursor is not valid")
		}
		q.After = n
	}
	return q, nil
}

func normNonEmpty(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty value")
	}
	return s, nil
}

// normAgent accepts an agent id, or system|value as a token.
func normAgent(s string) (string, error) {
	if _, v, ok := strings.Cut(s, "|"); ok {
		s = v
	}
	return normNonEmpty(s)
}

// normPatient accepts 123, Patient/123 or an absolute URL ending in
// Patient/123.
func normPatient(s string) (string, error) {
	if i := strings.LastIndex(s, "Patient/"); i >= 0 {
		s = s[i+len("Patient/"):]
	}
	if s == "" || strings.ContainsAny(s, "/?#") {
		return "", fmt.Errorf("%q is not a patient reference", s)
	}
	return "Patient/" + s, nil
}

func normAction(s string) (string, error) {
	s = strings.ToUpper(s)
	switch s {
	case "C", "R", "U", "D", "E":
		return s, nil
	}
	return "", fmt.Errorf("%q is not C, R, U, D or E", s)
}

func normOutcome(s string) (string, error) {
	switch s {
	case "0", "4", "8", "12":
		return s, nil
	}
	return "", fmt.Errorf("%q is not 0, 4, 8 or 12", s)
}

// applyDate narrows q by one date parameter: the value is a range (a whole
// year, month, day, second or instant) and the prefix compares it as FHIR
// search does: eq inside, ge/gt at or after start/end, le/lt before
// end/start. Values without a time zone are read as UTC.
func applyDate(q *Query, raw string) error {
	prefix := "eq"
	if len(raw) > 2 && raw[0] >= 'a' && raw[0] <= 'z' {
		prefix, raw = raw[:2], raw[2:]
	}
	start, end, err := dateRange(raw)
	if err != nil {
		return fhir.Errorf(fhir.ReasonRequestInvalid, "date: %v", err)
	}
	since := func(t time.Time) {
		if q.Since.IsZero() || t.After(q.Since) {
			q.Since = t
		}
	}
	until := func(t time.Time) {
		if q.Until.IsZero() || t.Before(q.Until) {
			q.Until = t
		}
	}
	switch prefix {
	case "eq":
		since(start)
		until(end)
	case "ge", "sa":
		since(start)
		if prefix == "sa" {
			since(end)
		}
	case "gt":
		since(end)
	case "le":
		until(end)
	case "lt", "eb":
		until(start)
	default:
		return fhir.Errorf(fhir.ReasonRequestInvalid, "date prefix %q is not supported", prefix)
	}
	return nil
}

// dateRange returns [start, end) of a FHIR date or dateTime value.
func dateRange(s string) (time.Time, time.Time, error) {
	layouts := []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05", func(t time.Time) time.Time { return t.Add(time.Second) }},
		{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
	}
	for _, l := range layouts {
		if t, err := time.Parse(l.layout, s); err == nil {
			return t, l.step(t), nil
		}
	}
	// Fractional seconds: the instant itself, to the microsecond the
	// store keeps.
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, t.Add(time.Microsecond), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, t.Add(time.Microsecond), nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("%q is not a FHIR date or dateTime", s)
}
