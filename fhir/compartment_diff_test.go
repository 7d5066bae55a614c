package fhir

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// patientRefsReference is PatientRefs as it was before the single-pass
// scan: validate with gjson, then one gjson.Get over the whole resource per
// compartment path. It is kept, unchanged, as the oracle that the faster
// PatientRefs must agree with on every input.
func patientRefsReference(resourceType string, raw []byte) (patientIDs []string, inCompartmentType bool) {
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
			collectRefsReference(root, path, func(ref gjson.Result) {
				if id, ok := patientIDFromReferenceReference(ref.Get("reference").String()); ok {
					patientIDs = appendUnique(patientIDs, id)
				}
			})
		}
	}
	return patientIDs, true
}

// collectRefsReference is the oracle's path walk.
func collectRefsReference(v gjson.Result, path []string, fn func(gjson.Result)) {
	if v.IsArray() {
		for _, e := range v.Array() {
			collectRefsReference(e, path, fn)
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
	collectRefsReference(v.Get(path[0]), path[1:], fn)
}

// patientIDFromReferenceReference is PatientIDFromReference as it was
// before it stopped splitting the reference: the oracle's, and the oracle
// of the new one.
func patientIDFromReferenceReference(ref string) (string, bool) {
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

// checkSameID fails t when PatientIDFromReference and its oracle disagree.
func checkSameID(t *testing.T, ref string) {
	t.Helper()
	id, ok := PatientIDFromReference(ref)
	wantID, wantOK := patientIDFromReferenceReference(ref)
	if id != wantID || ok != wantOK {
		t.Fatalf("%q: got %q %v, want %q %v", ref, id, ok, wantID, wantOK)
	}
}

// TestPatientIDFromReferenceMatchesReference compares PatientIDFromReference
// with its oracle on references built from every kind of segment.
func TestPatientIDFromReferenceMatchesReference(t *testing.T) {
	segs := []string{"", "Patient", "_history", "1", "p.1-x", "bad id", "http:", "https:", "fhir.example.org", "Observation", "x?", "#y",
		strings.Repeat("a", 64), strings.Repeat("a", 65)}
	var build func(prefix string, depth int)
	build = func(prefix string, depth int) {
		checkSameID(t, prefix)
		if depth == 0 {
			return
		}
		for _, s := range segs {
			if prefix == "" {
				build(s, depth-1)
			} else {
				build(prefix+"/"+s, depth-1)
			}
		}
	}
	build("", 4)
	for _, ref := range []string{"http://x/Patient/1", "http://x/Patient/1/_history/2", "Patient/1/_history/2", "a/Patient/1/_history/2", "Patient//_history/2",
		"/Patient/1", "Patient/1/", "//Patient/1", "urn:uuid:1/Patient/2", "x://Patient/1/_history/_history", "_history/1", "Patient/_history/1/_history/2"} {
		checkSameID(t, ref)
	}
}

// FuzzPatientIDFromReference compares PatientIDFromReference with its
// oracle on fuzzed references.
func FuzzPatientIDFromReference(f *testing.F) {
	for _, ref := range []string{"Patient/1", "Patient/1/_history/2", "http://a/b/Patient/x.y/_history/1", "a/Patient/1", "Patient/1#x", "//"} {
		f.Add(ref)
	}
	f.Fuzz(checkSameID)
}

// checkSameRefs fails t when PatientRefs or PatientRefsAndType disagrees
// with the oracle on raw (and, for the type, with the gjson.GetBytes the
// response check used), and returns how many ids they found.
func checkSameRefs(t *testing.T, typ string, raw []byte) int {
	t.Helper()
	want, wantIn := patientRefsReference(typ, raw)
	got, gotIn := PatientRefs(typ, raw)
	if !slices.Equal(got, want) || (got == nil) != (want == nil) || gotIn != wantIn {
		t.Fatalf("%s %q:\n got %q %v\nwant %q %v", typ, raw, got, gotIn, want, wantIn)
	}
	got, gotIn, gotType, gotDeclared := PatientRefsAndType(typ, raw)
	rt := gjson.GetBytes(raw, "resourceType")
	if !slices.Equal(got, want) || (got == nil) != (want == nil) || gotIn != wantIn || gotType != rt.String() || gotDeclared != rt.Exists() {
		t.Fatalf("%s %q:\n got %q %v type %q %v\nwant %q %v type %q %v", typ, raw, got, gotIn, gotType, gotDeclared, want, wantIn, rt.String(), rt.Exists())
	}
	return len(want)
}

// checkScan fails t when scanMembers disagrees with gjson on raw: on
// validity, on whether it is an object, or on the first top-level member
// of each name.
func checkScan(t *testing.T, raw []byte, names []string) {
	t.Helper()
	values := make([][]byte, len(names))
	object, valid := scanMembers(raw, names, values)
	if valid != gjson.ValidBytes(raw) {
		t.Fatalf("%q: valid %v, gjson says %v", raw, valid, !valid)
	}
	if !valid {
		return
	}
	if root := gjson.ParseBytes(raw); object != root.IsObject() {
		t.Fatalf("%q: object %v, gjson says %v", raw, object, !object)
	}
	if !object {
		return
	}
	for k, name := range names {
		want := gjson.GetBytes(raw, name)
		if string(values[k]) != want.Raw || (values[k] != nil) != want.Exists() {
			t.Fatalf("%q: member %s is %q, gjson says %q", raw, name, values[k], want.Raw)
		}
	}
}

// refForms are Reference values (and things found where a Reference
// belongs) in the forms PatientRefs must tell apart.
var refForms = []string{
	`{"reference":"Patient/p1"}`,
	`{"reference":"Patient/p2/_history/3","display":"Versioned"}`,
	`{"reference":"https://fhir.example.org/r4/Patient/p3"}`,
	`{"reference":"http://fhir.example.org/Patient/p4/_history/1"}`,
	`{"reference":"urn:uuid:9d1c6d5e-0d6b-4d2e-8c6a-3f1f0c1e2a7b"}`,
	`{"reference":"#pat"}`,
	`{"identifier":{"system":"urn:oid:1.2.36.146.595.217.0.1","value":"MRN-1"}}`,
	`{"type":"Patient","identifier":{"value":"12345"},"display":"Logical only"}`,
	`{"reference":"Patient?identifier=x|1"}`,
	`{"reference":"Group/g1"}`,
	`{"reference":"Practitioner/pr1","display":"Dr. \"Quoted\" \\ Name"}`,
	`{"reference":"RelatedPerson/rp1"}`,
	`{"reference":"a/Patient/p20"}`,
	`{"reference":"Patient/p21/extra"}`,
	`{"reference":"Patient\/p5"}`,
	`{"reference":"Pati\u0065nt/p6"}`,
	`{"refer\u0065nce":"Patient/p7"}`,
	`{"reference":"Patient/p1","reference":"Patient/p8"}`,
	`{"reference":null}`,
	`{"reference":42}`,
	`{"reference":true}`,
	`{"reference":["http://x.org/Patient/p9/_history/1"]}`,
	`{"reference":{"a":"http://x.org/Patient/p9/_history/1"}}`,
	`{"reference":"Patient/"}`,
	`{"reference":"Patient/p 1"}`,
	`{"reference":"Patient/p\u00e9"}`,
	`{"reference":"Patient/` + strings.Repeat("x", 65) + `"}`,
	`{"display":"no reference"}`,
	`{}`,
	`[]`,
	`"Patient/p10"`,
	`null`,
	`7`,
	`{"reference":"Patient/p11","extension":[{"url":"http://x.org/ext","valueReference":{"reference":"Patient/p12"}}]}`,
	`{ "reference" : "Patient/p13" , "display" : "Spaced" }`,
	"{\n\t\"reference\": \"Patient/p14\"\r\n}",
}

// genResource writes random resources of one type: every compartment path
// filled or left out, Reference forms from refForms, arrays at every step
// (nested too), escaped member names, repeated members, decoys of the
// wrong shape, contained resources and extensions that name patients, and
// varied whitespace.
type genResource struct {
	r   *rand.Rand
	typ string
	ws  []string
}

func (g *genResource) space() string { return g.ws[g.r.IntN(len(g.ws))] }

// key quotes name, sometimes with an escaped letter.
func (g *genResource) key(name string) string {
	if g.r.IntN(12) == 0 {
		i := g.r.IntN(len(name))
		return fmt.Sprintf(`"%s\u%04x%s"`, name[:i], name[i], name[i+1:])
	}
	return `"` + name + `"`
}

func (g *genResource) object(members []string) string {
	g.r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	var b strings.Builder
	b.WriteString("{" + g.space())
	for i, m := range members {
		if i > 0 {
			b.WriteString("," + g.space())
		}
		b.WriteString(m)
	}
	b.WriteString(g.space() + "}")
	return b.String()
}

func (g *genResource) member(name, value string) string {
	sep := ":"
	if g.r.IntN(6) == 0 {
		sep = g.space() + ":" + g.space()
	}
	return g.key(name) + sep + value
}

// value returns what may stand at path (below the element that holds it).
func (g *genResource) value(path []string) string {
	switch g.r.IntN(10) {
	case 0: // an array of several
		n := g.r.IntN(3)
		vs := make([]string, n)
		for i := range vs {
			vs[i] = g.value(path)
		}
		return "[" + strings.Join(vs, ","+g.space()) + "]"
	case 1: // a nested array
		return "[[" + g.value(path) + "]," + g.value(path) + "]"
	}
	if len(path) == 0 {
		return refForms[g.r.IntN(len(refForms))]
	}
	members := []string{g.member(path[0], g.value(path[1:]))}
	switch g.r.IntN(6) {
	case 0:
		members = append(members, g.member("role", `{"text":"a \"role\"\n"}`))
	case 1:
		members = append(members, g.member("reference", `"Patient/p30"`))
	case 2: // a repeated element: only the first counts
		members = append(members, g.member(path[0], g.value(path[1:])))
	}
	return g.object(members)
}

func (g *genResource) resource() string {
	var members []string
	switch g.r.IntN(10) {
	case 0: // none
	case 1: // another type first, then its own
		members = append(members, g.member("resourceType", `"Patient"`), g.member("resourceType", `"`+g.typ+`"`))
	default:
		members = append(members, g.member("resourceType", `"`+g.typ+`"`))
	}
	ids := []string{`"p1"`, `"p40"`, `"p\u0034"`, `"bad id"`, `42`, `null`, `""`, `"` + strings.Repeat("a", 65) + `"`}
	if g.r.IntN(5) > 0 {
		members = append(members, g.member("id", ids[g.r.IntN(len(ids))]))
	}
	firsts := map[string][]string{}
	for _, p := range PatientCompartmentParams(g.typ) {
		for _, path := range p.Paths {
			firsts[path[0]] = path
		}
	}
	for first, path := range firsts {
		switch g.r.IntN(8) {
		case 0: // missing
		case 1: // a decoy of the wrong shape first, the real one after
			decoys := []string{`null`, `"Patient/p50"`, `12`, `true`}
			members = append(members, g.member(first, decoys[g.r.IntN(len(decoys))]), g.member(first, g.value(path[1:])))
		default:
			members = append(members, g.member(first, g.value(path[1:])))
		}
	}
	if g.r.IntN(3) == 0 {
		members = append(members, g.member("contained", `[{"resourceType":"Patient","id":"pat","link":[{"other":{"reference":"Patient/p60"}}]},`+
			`{"resourceType":"Observation","subject":{"reference":"Patient/p61"}}]`))
	}
	if g.r.IntN(3) == 0 {
		members = append(members, g.member("extension", `[{"url":"http://x.org/subject","valueReference":{"reference":"Patient/p62"}}]`))
	}
	if g.r.IntN(3) == 0 {
		members = append(members, g.member("text", `{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">\"subject\":{\"reference\":\"Patient/p63\"} \u00e9\ud83d\ude00</div>"}`))
	}
	if g.r.IntN(4) == 0 {
		members = append(members, g.member("valueQuantity", `{"value":-1.5e+3,"unit":"mg"}`), g.member("effectiveDateTime", `"2024-01-01"`))
	}
	return g.space() + g.object(members) + g.space()
}

// corrupt returns raw damaged in one of the ways that make JSON invalid,
// or at least different.
func corrupt(r *rand.Rand, raw string) string {
	if raw == "" {
		return raw
	}
	i := r.IntN(len(raw))
	switch r.IntN(6) {
	case 0:
		return raw[:i]
	case 1:
		return raw[:i] + "," + raw[i:]
	case 2:
		return raw[:i] + "\x01" + raw[i+1:]
	case 3:
		return raw[:i] + raw[i+1:]
	case 4:
		return raw + " {}"
	default:
		return raw[:i] + `\` + raw[i:]
	}
}

func compartmentTypes() []string {
	var types []string
	for t := range patientCompartment {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// TestPatientRefsMatchesReference compares PatientRefs with the oracle on
// thousands of generated resources of every compartment type, and on
// damaged and non-object variants of them.
func TestPatientRefsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	wss := [][]string{{""}, {"", " ", "\n  ", "\t", "\r\n"}}
	// Counts of compared inputs, of those that link to patients (so the
	// comparison is not vacuous) and of those that are invalid JSON.
	var n, linked, invalid int
	for _, typ := range compartmentTypes() {
		typeLinked := 0
		for i := range 300 {
			g := &genResource{r: r, typ: typ, ws: wss[i%2]}
			raw := g.resource()
			for _, variant := range []string{raw, corrupt(r, raw), "[" + raw + "," + raw + "]", " [[" + raw + "]] "} {
				if checkSameRefs(t, typ, []byte(variant)) > 0 {
					linked++
					typeLinked++
				}
				if !gjson.Valid(variant) {
					invalid++
				}
				checkScan(t, []byte(variant), patientLinkPlans[typ].members)
				n++
			}
			// The same resource read as another type.
			checkSameRefs(t, "Patient", []byte(raw))
		}
		if typeLinked < 100 {
			t.Errorf("%s: only %d generated resources link to a patient", typ, typeLinked)
		}
	}
	for _, raw := range []string{"", " ", "null", `"x"`, "12", "-0.5e-7", "true", "[]", "{}", `{"id":"1"}x`, `"{\"id\":\"1\"}"`, "[1,]", "{\"id\":\"1\",}",
		`{"resourceType":"Observation","resourceType":"Patient"}`, `{"resourceType":null}`, `{"resourceType":{"a":1}}`, `{"resourceType":12}`, `{"resourc\u0065Type":"Patient"}`,
		`{"resourceType":"Pati\u0065nt","id":"1"}`, `[{"resourceType":"Patient"}]`, `{"resourceType":"Patient"`, `{"resourceType":"Patient","id":}`} {
		for _, typ := range []string{"Patient", "Observation", "Practitioner", "Bundle"} {
			checkSameRefs(t, typ, []byte(raw))
		}
	}
	t.Logf("%d inputs compared, %d linked to patients, %d invalid", n, linked, invalid)
	if invalid < n/10 {
		t.Errorf("only %d of %d inputs are invalid JSON", invalid, n)
	}
}

// TestScanMembersValidity checks scanMembers' validation against gjson's on
// small JSON texts, valid and invalid, around every grammar rule.
func TestScanMembersValidity(t *testing.T) {
	texts := []string{
		``, ` `, `{`, `}`, `{}`, `[]`, `[`, `]`, `{]`, `[}`, ` {} `, "\t[\n]\r", "\v{}", "\x00{}", `{}{}`, `{} x`,
		`0`, `-0`, `-`, `01`, `1.`, `1.5`, `.5`, `1e`, `1e+`, `1E-2`, `1e5.5`, `-a`, `+1`, `1x`, `[1 2]`, `[-]`,
		`true`, `tru`, `truex`, `false`, `fals`, `null`, `nul`, `nulls`, `[true,false,null]`, `NaN`, `Infinity`,
		`""`, `"`, `"a`, `"\"`, `"\\"`, `"\/"`, `"\x"`, `"\u00e9"`, `"\u00g9"`, `"\u00"`, "\"\x1f\"", "\"\x1fn\"", "\"\x00\"", "\"\x7f\xff\"", "\"abcdefgh\x1fn\"", `"\ud83d"`,
		`{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1,}`, `{"a":1 "b":2}`, `{,}`, `{a:1}`, `{"a":1}`, `{"a":[1,{"b":[]}]}`, `[,1]`, `[1,,2]`,
		`{"a":1}}`, `[[[[]]]]`, `[[[[]]]`, `{"a":{"b":{"c":{}}}}`, `{"a":{"b":{"c":{}}}`, strings.Repeat("[", 100) + strings.Repeat("]", 100),
		`{"id":"1","id":"2"}`, `{"i\u0064":"1"}`, `{"id\\":"1"}`, `{"\"id":"1"}`, `{"subject":null,"subject":{"reference":"Patient/1"}}`,
	}
	for _, s := range texts {
		checkScan(t, []byte(s), []string{"id", "subject", "a"})
	}
	// Strings are read eight bytes at a time: every kind of byte at every
	// offset within and across words, and escapes split across words.
	for n := range 20 {
		for p := range n {
			for _, c := range []string{`"`, `\`, `\"`, `\\`, `\u0041`, `\u00`, `\x`, "\x00", "\x1f", " ", "\x7f", "\x80", "\xff"} {
				str := strings.Repeat("a", p) + c + strings.Repeat("b", n-p)
				checkScan(t, []byte(`"`+str+`"`), nil)
				checkScan(t, []byte(`{"`+str+`":1,"id":"x"}`), []string{"id"})
			}
		}
	}
}

// FuzzPatientRefs compares PatientRefs with the oracle, and scanMembers
// with gjson, on fuzzed resource JSON read as any compartment type.
func FuzzPatientRefs(f *testing.F) {
	types := compartmentTypes()
	r := rand.New(rand.NewPCG(3, 4))
	for i, typ := range types {
		g := &genResource{r: r, typ: typ, ws: []string{"", " ", "\n"}}
		f.Add(uint8(i), []byte(g.resource()))
	}
	f.Add(uint8(slices.Index(types, "Patient")), []byte(`{"resourceType":"Patient","id":"8","link":[{"other":{"reference":"Patient/9"}}]}`))
	f.Add(uint8(0), []byte(`[{"subject":{"reference":"Patient/1"}}]`))
	f.Fuzz(func(t *testing.T, ti uint8, raw []byte) {
		typ := types[int(ti)%len(types)]
		checkSameRefs(t, typ, raw)
		checkScan(t, raw, patientLinkPlans[typ].members)
	})
}

// TestLinkPlans checks the plans against the compartment data: every path
// is planned once, in order, starting at its member.
func TestLinkPlans(t *testing.T) {
	for typ, params := range patientCompartment {
		p := patientLinkPlans[typ]
		var want [][]string
		for _, param := range params {
			for _, path := range param.Paths {
				if !slices.ContainsFunc(want, func(w []string) bool { return slices.Equal(w, path) }) {
					want = append(want, path)
				}
			}
		}
		if len(p.paths) != len(want) {
			t.Fatalf("%s: %d paths planned, want %d", typ, len(p.paths), len(want))
		}
		for i, lp := range p.paths {
			if !slices.Equal(lp.path, want[i]) || p.members[lp.member] != lp.path[0] {
				t.Errorf("%s: path %d is %v at member %q", typ, i, lp.path, p.members[lp.member])
			}
		}
		if (p.idMember >= 0) != (typ == "Patient") || p.idMember >= 0 && p.members[p.idMember] != "id" {
			t.Errorf("%s: id member %d", typ, p.idMember)
		}
		if p.members[p.typeMember] != "resourceType" {
			t.Errorf("%s: type member %d", typ, p.typeMember)
		}
	}
}

// Realistic resources as a FHIR server returns them (canonical element
// order, no whitespace), for the benchmarks.
const (
	benchClaim = `{"resourceType":"Claim","id":"claim-001-1","meta":{"versionId":"1","lastUpdated":"2025-01-06T09:21:00Z","tag":[{"system":"https://fhirwall.dev/fhir/CodeSystem/demo","code":"synthetic","display":"Synthetic demo data, not a real person"}]},` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Professional claim for Lena Dummond, 2024-02-22, USD 176.49</p></div>"},` +
		`"identifier":[{"system":"https://fhirwall.dev/fhir/sid/demo-claim","value":"CLM-001-1"}],"status":"active",` +
		`"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional","display":"Professional"}],"text":"Professional"},"use":"claim",` +
		`"patient":{"reference":"Patient/pat-001","display":"Lena Dummond"},"billablePeriod":{"start":"2024-02-22","end":"2024-02-22"},"created":"2024-02-23",` +
		`"insurer":{"reference":"Organization/org-payer-1","display":"Acme Demo Health Plan"},"provider":{"reference":"Organization/org-clinic","display":"Riverbend Demo Clinic"},` +
		`"priority":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/processpriority","code":"normal","display":"Normal"}],"text":"Normal"},` +
		`"careTeam":[{"sequence":1,"provider":{"reference":"Practitioner/prac-2","display":"Dr. Hugo Placeholt"}}],` +
		`"diagnosis":[{"sequence":1,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"J45.909","display":"Unspecified asthma, uncomplicated"}],"text":"Unspecified asthma, uncomplicated"}},` +
		`{"sequence":2,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"I10","display":"Essential (primary) hypertension"}]}}],` +
		`"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/cov-001"}}],` +
		`"item":[{"sequence":1,"diagnosisSequence":[1,2],"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"99213","display":"Office or other outpatient visit, established patient"}],"text":"Office or other outpatient visit, established patient"},` +
		`"servicedDate":"2024-02-22","unitPrice":{"value":176.49,"currency":"USD"},"net":{"value":176.49,"currency":"USD"},"encounter":[{"reference":"Encounter/enc-001-1"}]}],` +
		`"total":{"value":176.49,"currency":"USD"}}`
	benchPatient = `{"resourceType":"Patient","id":"pat-001","meta":{"versionId":"1","lastUpdated":"2025-01-06T09:08:00Z","tag":[{"system":"https://fhirwall.dev/fhir/CodeSystem/demo","code":"synthetic","display":"Synthetic demo data, not a real person"}]},` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Lena Dummond, female, born 1989-09-24, MRN MRN-315405</p></div>"},` +
		`"identifier":[{"use":"usual","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR","display":"Medical record number"}],"text":"Medical record number"},"system":"https://fhirwall.dev/fhir/sid/demo-mrn","value":"MRN-315405"},` +
		`{"use":"official","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"SS","display":"Social Security number"}],"text":"Social Security number"},"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-35-1554"}],` +
		`"active":true,"name":[{"use":"official","text":"Lena Dummond","family":"Dummond","given":["Lena"]}],` +
		`"telecom":[{"system":"phone","value":"(864) 555-0111","use":"home"},{"system":"email","value":"lena.dummond@example.org","use":"home"}],` +
		`"gender":"female","birthDate":"1989-09-24","address":[{"use":"home","line":["475 Sample Street"],"city":"Greenville","state":"SC","postalCode":"29666","country":"US"}],` +
		`"generalPractitioner":[{"reference":"Practitioner/prac-1","display":"Dr. Dorothea Sampleton"}],"managingOrganization":{"reference":"Organization/org-clinic","display":"Riverbend Demo Clinic"}}`
	benchObservation = `{"resourceType":"Observation","id":"obs-001-7","meta":{"versionId":"1","lastUpdated":"2025-01-06T09:30:00Z"},"status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory","display":"Laboratory"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"4548-4","display":"Hemoglobin A1c/Hemoglobin.total in Blood"}],"text":"HbA1c"},` +
		`"subject":{"reference":"Patient/pat-001","display":"Lena Dummond"},"encounter":{"reference":"Encounter/enc-001-1"},"effectiveDateTime":"2024-02-22T10:15:00Z","issued":"2024-02-22T16:40:00Z",` +
		`"performer":[{"reference":"Organization/org-lab","display":"Riverbend Demo Lab"}],"valueQuantity":{"value":6.8,"unit":"%","system":"http://unitsofmeasure.org","code":"%"},` +
		`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"H","display":"High"}]}],` +
		`"referenceRange":[{"low":{"value":4,"unit":"%","system":"http://unitsofmeasure.org","code":"%"},"high":{"value":5.6,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}}]}`
)

// BenchmarkPatientRefs compares PatientRefs with the oracle (the per-path
// gjson lookups it replaced) on realistic resources.
func BenchmarkPatientRefs(b *testing.B) {
	for _, r := range []struct{ typ, raw string }{{"Claim", benchClaim}, {"Patient", benchPatient}, {"Observation", benchObservation}} {
		raw := []byte(r.raw)
		if ids, _ := PatientRefs(r.typ, raw); !slices.Equal(ids, []string{"pat-001"}) {
			b.Fatalf("%s: %q", r.typ, ids)
		}
		for _, impl := range []struct {
			name string
			fn   func(string, []byte) ([]string, bool)
		}{{"old", patientRefsReference}, {"new", PatientRefs}} {
			b.Run(r.typ+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				for b.Loop() {
					impl.fn(r.typ, raw)
				}
			})
		}
	}
}
