package fhir

import (
	_ "embed"
	"strings"

	"github.com/tidwall/gjson"
)

// patientCompartmentData is the R4 CompartmentDefinition for Patient with
// the element paths behind each search parameter (see the file's header).
//
//go:embed data/patient_compartment.txt
var patientCompartmentData string

// CompartmentParam is one search parameter that links a resource type to
// the patient compartment, with the element paths (below the resource type,
// dot separated, each a Reference) that its R4 SearchParameter evaluates.
type CompartmentParam struct {
	Name  string
	Paths [][]string
}

var patientCompartment = parsePatientCompartment(patientCompartmentData)

func parsePatientCompartment(data string) map[string][]CompartmentParam {
	m := make(map[string][]CompartmentParam, 70)
	for line := range strings.Lines(data) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		var params []CompartmentParam
		for _, f := range fields[1:] {
			name, paths, _ := strings.Cut(f, "=")
			p := CompartmentParam{Name: name}
			for path := range strings.SplitSeq(paths, "|") {
				p.Paths = append(p.Paths, strings.Split(path, "."))
			}
			params = append(params, p)
		}
		m[fields[0]] = params
	}
	return m
}

// InPatientCompartment reports whether resources of type t can be in a
// patient compartment according to the R4 CompartmentDefinition. Types that
// cannot (Practitioner, Organization, Medication, Task, Binary, ...) are never
// confined to a patient by the specification; how a patient/ scope treats
// them is a policy decision made in package policy, not here.
func InPatientCompartment(t string) bool {
	_, ok := patientCompartment[t]
	return ok
}

// PatientCompartmentParams returns the search parameters that link type t to
// the patient compartment, in the order of the CompartmentDefinition, or nil
// when t is in no patient compartment. The caller must not modify the result.
func PatientCompartmentParams(t string) []CompartmentParam {
	return patientCompartment[t]
}

// PatientRefs returns the ids of the patients that the resource raw (JSON of
// type resourceType) is linked to through the patient compartment's
// parameters, and whether the type is in the patient compartment at all.
// A Patient resource is linked to itself (its id comes first) and to the
// patients in Patient.link.other.
//
// Only literal references to Patient count: "Patient/123",
// "Patient/123/_history/4" and absolute URLs ending in "/Patient/123".
// Contained ("#p1"), logical (identifier only) and urn:uuid references name
// no patient and are ignored, so a resource whose only link is such a
// reference is in no patient's compartment: callers must treat an empty
// result as "not in this patient's compartment". Ids are returned once each,
// in order of appearance. Invalid JSON yields no ids.
func PatientRefs(resourceType string, raw []byte) (patientIDs []string, inCompartmentType bool) {
	params, ok := patientCompartment[resourceType]
	if !ok {
		return nil, false
	}
	if !gjson.ValidBytes(raw) {
		return nil, true
	}
	root := gjson.ParseBytes(raw)
	if resourceType == "Patient" {
		if id := root.Get("id"); id.Type == gjson.String && validID(id.Str) {
			patientIDs = append(patientIDs, id.Str)
		}
	}
	for _, p := range params {
		for _, path := range p.Paths {
			collectRefs(root, path, func(ref gjson.Result) {
				if id, ok := PatientIDFromReference(ref.Get("reference").String()); ok {
					patientIDs = appendUnique(patientIDs, id)
				}
			})
		}
	}
	return patientIDs, true
}

// collectRefs walks path below v, flattening arrays at every step, and calls
// fn with each element found at the end of the path.
func collectRefs(v gjson.Result, path []string, fn func(gjson.Result)) {
	if v.IsArray() {
		for _, e := range v.Array() {
			collectRefs(e, path, fn)
		}
		return
	}
	if len(path) == 0 {
		if v.IsObject() {
			fn(v)
		}
		return
	}
	if !v.IsObject() {
		return
	}
	// Element names are plain identifiers (TestCompartmentData checks it),
	// so they are safe as gjson paths.
	collectRefs(v.Get(path[0]), path[1:], fn)
}

// PatientIDFromReference returns the patient id named by a literal
// reference: "Patient/123", "Patient/123/_history/2" or an absolute URL whose
// last type/id pair is Patient/123. It reports false for anything else,
// including references with a query or fragment.
func PatientIDFromReference(ref string) (string, bool) {
	if ref == "" || strings.ContainsAny(ref, "?#") {
		return "", false
	}
	parts := strings.Split(ref, "/")
	// Drop a trailing _history/{vid}.
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	n := len(parts)
	if n < 2 || parts[n-2] != "Patient" || !validID(parts[n-1]) {
		return "", false
	}
	if n > 2 && !strings.Contains(ref, "://") {
		// A relative reference has exactly two segments.
		return "", false
	}
	return parts[n-1], true
}

func appendUnique(s []string, v string) []string {
	for _, e := range s {
		if e == v {
			return s
		}
	}
	return append(s, v)
}
