package fhir

import (
	_ "embed"
	"slices"
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
//
// It runs on every resource of every response, so it reads raw once (see
// scanMembers) rather than once per compartment path; paths are then
// resolved within the few top-level members they start with. Where an
// element repeats, the first one counts, as with gjson.Get.
func PatientRefs(resourceType string, raw []byte) (patientIDs []string, inCompartmentType bool) {
	patientIDs, inCompartmentType, _, _ = readLinks(resourceType, raw, false)
	return patientIDs, inCompartmentType
}

// PatientRefsAndType is PatientRefs that also returns the resource's own
// "resourceType" member, read in the same pass: declaredType is its text
// and declared whether it exists, exactly as gjson.GetBytes(raw,
// "resourceType") reports them (String and Exists), whatever raw holds.
// A response check needs both for every resource, and a separate look-up
// costs nearly another pass when the upstream sorts members by name
// (resourceType then follows most of them).
func PatientRefsAndType(resourceType string, raw []byte) (patientIDs []string, inCompartmentType bool, declaredType string, declared bool) {
	return readLinks(resourceType, raw, true)
}

// readLinks does the work of PatientRefs and, when wantType,
// PatientRefsAndType.
func readLinks(resourceType string, raw []byte, wantType bool) (patientIDs []string, inCompartmentType bool, declaredType string, declared bool) {
	plan, inCompartmentType := patientLinkPlans[resourceType]
	var found [maxLinkMembers][]byte
	var object, valid bool
	if inCompartmentType {
		object, valid = scanMembers(raw, plan.members, found[:len(plan.members)])
	}
	if !object || !valid {
		// No links to read, or no resource to read them from: look the
		// type up as gjson always did.
		if wantType {
			declaredType, declared = typeOf(gjson.GetBytes(raw, "resourceType"))
		}
		if valid {
			patientIDs = plan.walkRoot(gjson.Parse(string(raw)))
		}
		return patientIDs, inCompartmentType, declaredType, declared
	}
	skip := plan.typeMember
	if wantType {
		skip = -1
	}
	members := parseMembers(found[:len(plan.members)], skip)
	if wantType {
		declaredType, declared = typeOf(members[plan.typeMember])
	}
	if plan.idMember >= 0 {
		patientIDs = appendPatientID(patientIDs, members[plan.idMember])
	}
	for _, lp := range plan.paths {
		patientIDs = appendPatientRefs(patientIDs, members[lp.member], lp.path[1:])
	}
	return patientIDs, true, declaredType, declared
}

// walkRoot returns the patient ids of root, valid JSON that is no object and
// so no resource, by walking it whole as the per-path look-ups always did:
// the answer stays the same (empty, or from an array flattened).
func (p *linkPlan) walkRoot(root gjson.Result) (ids []string) {
	if p.idMember >= 0 {
		ids = appendPatientID(ids, root.Get("id"))
	}
	for _, lp := range p.paths {
		ids = appendPatientRefs(ids, root, lp.path)
	}
	return ids
}

// appendPatientID appends id, a Patient's own id member (the first of its
// links), if it is a valid id.
func appendPatientID(ids []string, id gjson.Result) []string {
	if id.Type == gjson.String && validID(id.Str) {
		ids = append(ids, id.Str)
	}
	return ids
}

// parseMembers returns the members found by scanMembers (but the one at
// index skip, if any) as gjson results. They are copied, into one string
// for all, because what is read from them is returned and must not alias
// raw, which callers may reuse.
func parseMembers(found [][]byte, skip int) (members [maxLinkMembers]gjson.Result) {
	size := 0
	for k, v := range found {
		if k != skip {
			size += len(v)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for k, v := range found {
		if k != skip {
			b.Write(v)
		}
	}
	all := b.String()
	for k, v := range found {
		if v != nil && k != skip {
			members[k] = gjson.Parse(all[:len(v)])
			all = all[len(v):]
		}
	}
	return members
}

// typeOf returns what PatientRefsAndType reports of a resourceType member.
func typeOf(v gjson.Result) (string, bool) { return v.String(), v.Exists() }

// linkPlan is how readLinks reads a resource of one type: the distinct
// top-level members that the type's compartment paths start with (and
// "resourceType", and "id" for Patient), which one pass over the resource
// collects, and each distinct path with the member it starts at, in the
// order of the CompartmentDefinition so that ids keep their order of
// appearance.
type linkPlan struct {
	members    []string
	paths      []linkPath
	typeMember int // index of "resourceType" in members
	idMember   int // index of "id" in members for Patient, else -1
}

type linkPath struct {
	member int      // index in linkPlan.members of path[0]
	path   []string // the whole element path
}

// maxLinkMembers bounds linkPlan.members (R4 needs at most five) so that
// readLinks keeps its look-ups in fixed arrays.
const maxLinkMembers = 8

var patientLinkPlans = makeLinkPlans(patientCompartment)

func makeLinkPlans(compartment map[string][]CompartmentParam) map[string]*linkPlan {
	plans := make(map[string]*linkPlan, len(compartment))
	for t, params := range compartment {
		p := &linkPlan{idMember: -1}
		p.typeMember = p.member("resourceType")
		if t == "Patient" {
			p.idMember = p.member("id")
		}
		for _, param := range params {
			for _, path := range param.Paths {
				// A path listed twice (MedicationAdministration's
				// patient and subject) finds no new id the second time.
				if !slices.ContainsFunc(p.paths, func(lp linkPath) bool { return slices.Equal(lp.path, path) }) {
					p.paths = append(p.paths, linkPath{member: p.member(path[0]), path: path})
				}
			}
		}
		if len(p.members) > maxLinkMembers {
			panic("fhir: " + t + " links to the patient compartment through too many members")
		}
		plans[t] = p
	}
	return plans
}

// member returns the index of name in p.members, adding it if needed.
func (p *linkPlan) member(name string) int {
	if k := slices.Index(p.members, name); k >= 0 {
		return k
	}
	p.members = append(p.members, name)
	return len(p.members) - 1
}

// appendPatientRefs walks path below v, flattening arrays at every step,
// and appends to ids the patient named by the "reference" of each object
// found at the end of the path, if it is new.
func appendPatientRefs(ids []string, v gjson.Result, path []string) []string {
	if v.IsArray() {
		v.ForEach(func(_, e gjson.Result) bool {
			ids = appendPatientRefs(ids, e, path)
			return true
		})
		return ids
	}
	if !v.IsObject() {
		return ids
	}
	if len(path) > 0 {
		// Element names are plain identifiers (TestCompartmentData checks
		// it), so they are safe as gjson paths.
		return appendPatientRefs(ids, v.Get(path[0]), path[1:])
	}
	if id, ok := PatientIDFromReference(v.Get("reference").String()); ok {
		ids = appendUnique(ids, id)
	}
	return ids
}

// PatientIDFromReference returns the patient id named by a literal
// reference: "Patient/123", "Patient/123/_history/2" or an absolute URL whose
// last type/id pair is Patient/123. It reports false for anything else,
// including references with a query or fragment.
//
// It runs for every reference of every resource checked, so it reads the
// last segments in place rather than splitting ref.
func PatientIDFromReference(ref string) (string, bool) {
	if ref == "" || strings.ContainsAny(ref, "?#") {
		return "", false
	}
	segments := strings.Count(ref, "/") + 1
	head, id, ok := cutLastSegment(ref)
	if !ok {
		return "", false
	}
	// Drop a trailing _history/{vid}.
	if segments >= 4 {
		if rest, seg, _ := cutLastSegment(head); seg == "_history" {
			head, id, _ = cutLastSegment(rest)
			segments -= 2
		}
	}
	if _, typ, _ := cutLastSegment(head); typ != "Patient" || !validID(id) {
		return "", false
	}
	if segments > 2 && !strings.Contains(ref, "://") {
		// A relative reference has exactly two segments.
		return "", false
	}
	return id, true
}

// cutLastSegment splits path around its last "/"; without one, last is
// the whole path.
func cutLastSegment(path string) (head, last string, found bool) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", path, false
	}
	return path[:i], path[i+1:], true
}

func appendUnique(s []string, v string) []string {
	for _, e := range s {
		if e == v {
			return s
		}
	}
	return append(s, v)
}
