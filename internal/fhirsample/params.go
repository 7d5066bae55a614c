package fhirsample

import (
	"strings"
	"time"
)

// resourceTypes are the types this server stores, in CapabilityStatement
// order.
var resourceTypes = []string{
	"Patient", "Practitioner", "Organization", "Encounter", "Observation",
	"Condition", "Coverage", "Claim",
}

func isType(t string) bool {
	_, ok := searchParams[t]
	return ok
}

// paramType is a FHIR search parameter type.
type paramType string

const (
	ptToken     paramType = "token"
	ptReference paramType = "reference"
	ptString    paramType = "string"
	ptDate      paramType = "date"
)

// searchParam is one supported search parameter: its type and the
// elements it searches (dotted paths; arrays on the way are flattened).
type searchParam struct {
	typ    paramType
	paths  []string
	target string // reference parameters: the one type they point to, "" any
}

var (
	pID          = searchParam{ptToken, []string{"id"}, ""}
	pLastUpdated = searchParam{ptDate, []string{"meta.lastUpdated"}, ""}
	pTag         = searchParam{ptToken, []string{"meta.tag"}, ""}
	pIdentifier  = searchParam{ptToken, []string{"identifier"}, ""}
	pStatus      = searchParam{ptToken, []string{"status"}, ""}
	pSubject     = searchParam{ptReference, []string{"subject"}, ""}
	pSubjectPat  = searchParam{ptReference, []string{"subject"}, "Patient"}
	pCategory    = searchParam{ptToken, []string{"category"}, ""}
	pCode        = searchParam{ptToken, []string{"code"}, ""}
	pEncounter   = searchParam{ptReference, []string{"encounter"}, "Encounter"}
	pName        = searchParam{ptString, []string{"name"}, ""}
	pFamily      = searchParam{ptString, []string{"name.family"}, ""}
	pGiven       = searchParam{ptString, []string{"name.given"}, ""}
	pActive      = searchParam{ptToken, []string{"active"}, ""}
)

// searchParams lists, per type, the parameters search understands. The
// CapabilityStatement is generated from it, so it cannot drift.
var searchParams = map[string]map[string]searchParam{
	"Patient": {
		"name": pName, "family": pFamily, "given": pGiven, "identifier": pIdentifier, "active": pActive,
		"birthdate":            {ptDate, []string{"birthDate"}, ""},
		"gender":               {ptToken, []string{"gender"}, ""},
		"telecom":              {ptToken, []string{"telecom"}, ""},
		"address-postalcode":   {ptString, []string{"address.postalCode"}, ""},
		"general-practitioner": {ptReference, []string{"generalPractitioner"}, ""},
		"organization":         {ptReference, []string{"managingOrganization"}, "Organization"},
	},
	"Practitioner": {"name": pName, "family": pFamily, "given": pGiven, "identifier": pIdentifier, "active": pActive},
	"Organization": {
		"name": {ptString, []string{"name"}, ""}, "identifier": pIdentifier, "active": pActive,
		"type": {ptToken, []string{"type"}, ""},
	},
	"Encounter": {
		"patient": pSubjectPat, "subject": pSubject, "status": pStatus,
		"class":            {ptToken, []string{"class"}, ""},
		"date":             {ptDate, []string{"period"}, ""},
		"practitioner":     {ptReference, []string{"participant.individual"}, "Practitioner"},
		"service-provider": {ptReference, []string{"serviceProvider"}, "Organization"},
	},
	"Observation": {
		"patient": pSubjectPat, "subject": pSubject, "category": pCategory, "code": pCode,
		"status": pStatus, "encounter": pEncounter,
		"date":      {ptDate, []string{"effectiveDateTime"}, ""},
		"performer": {ptReference, []string{"performer"}, ""},
	},
	"Condition": {
		"patient": pSubjectPat, "subject": pSubject, "category": pCategory, "code": pCode,
		"encounter":       pEncounter,
		"clinical-status": {ptToken, []string{"clinicalStatus"}, ""},
		"onset-date":      {ptDate, []string{"onsetDateTime"}, ""},
	},
	"Coverage": {
		"patient":     {ptReference, []string{"beneficiary"}, "Patient"},
		"beneficiary": {ptReference, []string{"beneficiary"}, "Patient"},
		"payor":       {ptReference, []string{"payor"}, ""},
		"status":      pStatus,
		"type":        {ptToken, []string{"type"}, ""},
	},
	"Claim": {
		"patient": {ptReference, []string{"patient"}, "Patient"}, "status": pStatus, "identifier": pIdentifier,
		"provider": {ptReference, []string{"provider"}, ""},
		"insurer":  {ptReference, []string{"insurer"}, "Organization"},
		"use":      {ptToken, []string{"use"}, ""},
		"created":  {ptDate, []string{"created"}, ""},
	},
}

// commonParams apply to every type.
var commonParams = map[string]searchParam{"_id": pID, "_lastUpdated": pLastUpdated, "_tag": pTag}

// patientCompartment names, per type, the parameter that puts a resource
// in a Patient's compartment (a subset of R4's CompartmentDefinition).
var patientCompartment = map[string]string{
	"Observation": "patient",
	"Condition":   "patient",
	"Encounter":   "patient",
	"Coverage":    "beneficiary",
	"Claim":       "patient",
}

func lookupParam(typ, name string) (searchParam, bool) {
	if p, ok := commonParams[name]; ok {
		return p, true
	}
	p, ok := searchParams[typ][name]
	return p, ok
}

// elements returns the values at path in res, with arrays flattened.
func elements(res map[string]any, path string) []any {
	cur := []any{res}
	for _, step := range strings.Split(path, ".") {
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			next = appendFlat(next, m[step])
		}
		cur = next
	}
	return cur
}

func appendFlat(dst []any, v any) []any {
	switch x := v.(type) {
	case nil:
		return dst
	case []any:
		for _, e := range x {
			dst = appendFlat(dst, e)
		}
		return dst
	}
	return append(dst, v)
}

// token is a system|code pair found in a resource.
type token struct{ system, code string }

// tokens extracts the codes of a code, boolean, Coding, CodeableConcept,
// Identifier or ContactPoint value.
func tokens(v any) []token {
	switch x := v.(type) {
	case string:
		return []token{{"", x}}
	case bool:
		if x {
			return []token{{"", "true"}}
		}
		return []token{{"", "false"}}
	case map[string]any:
		if cs, ok := x["coding"]; ok {
			var out []token
			for _, c := range appendFlat(nil, cs) {
				out = append(out, tokens(c)...)
			}
			return out
		}
		sys, _ := x["system"].(string)
		if code, ok := x["code"].(string); ok {
			return []token{{sys, code}}
		}
		if val, ok := x["value"].(string); ok {
			return []token{{sys, val}}
		}
	}
	return nil
}

// matchToken reports whether a token search value (code, system|code,
// |code or system|) matches t.
func matchToken(t token, value string) bool {
	sys, code, hasSys := strings.Cut(value, "|")
	if !hasSys {
		return t.code == value
	}
	if sys == "" {
		return t.system == "" && t.code == code
	}
	return t.system == sys && (code == "" || t.code == code)
}

// stringsIn collects the strings in a string, HumanName or Address value.
func stringsIn(v any, out []string) []string {
	switch x := v.(type) {
	case string:
		return append(out, x)
	case []any:
		for _, e := range x {
			out = stringsIn(e, out)
		}
	case map[string]any:
		for k, e := range x {
			if k == "use" || k == "period" || k == "type" {
				continue
			}
			out = stringsIn(e, out)
		}
	}
	return out
}

// matchString applies a string search: a case-insensitive prefix match by
// default, :exact and :contains as FHIR defines them.
func matchString(s, value, modifier string) bool {
	switch modifier {
	case "exact":
		return s == value
	case "contains":
		return strings.Contains(strings.ToLower(s), strings.ToLower(value))
	}
	return strings.HasPrefix(strings.ToLower(s), strings.ToLower(value))
}

// referenceOf returns the "Type/id" a Reference value points to, with the
// server's own base stripped; "" for anything else.
func referenceOf(v any, base string) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	ref, _ := m["reference"].(string)
	if base != "" {
		ref = strings.TrimPrefix(ref, base+"/")
	}
	if before, _, ok := strings.Cut(ref, "/_history/"); ok {
		ref = before
	}
	if strings.Count(ref, "/") != 1 {
		return ""
	}
	return ref
}

// matchReference reports whether ref ("Type/id") matches a reference
// search value: "Type/id", an absolute URL ending in Type/id, or a bare id
// (typed by the :Type modifier or the parameter's target).
func matchReference(ref, value, modifier, target string) bool {
	rt, rid, _ := strings.Cut(ref, "/")
	if strings.Contains(value, "/") {
		parts := strings.Split(strings.TrimSuffix(value, "/"), "/")
		if i := indexOf(parts, "_history"); i >= 2 {
			parts = parts[:i]
		}
		if len(parts) < 2 {
			return false
		}
		return rt == parts[len(parts)-2] && rid == parts[len(parts)-1]
	}
	if modifier != "" {
		target = modifier
	}
	return rid == value && (target == "" || rt == target)
}

func indexOf(s []string, v string) int {
	for i, e := range s {
		if e == v {
			return i
		}
	}
	return -1
}

// dateRange returns the half-open interval [lo, hi) a date, dateTime or
// instant covers at its precision.
func dateRange(s string) (lo, hi time.Time, ok bool) {
	layouts := []struct {
		layout string
		add    func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{time.RFC3339, func(t time.Time) time.Time { return t.Add(time.Second) }},
	}
	for _, l := range layouts {
		if t, err := time.Parse(l.layout, s); err == nil {
			return t, l.add(t), true
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, t.Add(time.Millisecond), true
	}
	return time.Time{}, time.Time{}, false
}

// valueRange is the interval of a date-like element: a date, dateTime,
// instant or Period.
func valueRange(v any) (lo, hi time.Time, ok bool) {
	switch x := v.(type) {
	case string:
		return dateRange(x)
	case map[string]any:
		start, _ := x["start"].(string)
		end, _ := x["end"].(string)
		lo, hi = time.Unix(-1<<40, 0), time.Unix(1<<40, 0) // open ends
		if start != "" {
			if lo, _, ok = dateRange(start); !ok {
				return lo, hi, false
			}
		}
		if end != "" {
			if _, hi, ok = dateRange(end); !ok {
				return lo, hi, false
			}
		}
		return lo, hi, start != "" || end != ""
	}
	return lo, hi, false
}

// matchDate applies a date comparison as R4 defines it over ranges.
func matchDate(lo, hi time.Time, prefix string, plo, phi time.Time) bool {
	eq := !lo.Before(plo) && !hi.After(phi)
	switch prefix {
	case "eq":
		return eq
	case "ne":
		return !eq
	case "gt":
		return hi.After(phi)
	case "lt":
		return lo.Before(plo)
	case "ge":
		return eq || hi.After(phi)
	case "le":
		return eq || lo.Before(plo)
	}
	return false
}
