package masking

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// testProfiles is the configuration every golden case compiles.
var testProfiles = map[string][]RuleSpec{
	"contact": {
		{Path: "Patient.telecom"},
		{Path: "Patient.address.line"},
		{Path: "Patient.identifier.where(system='http://hl7.org/fhir/sid/us-ssn')"},
	},
	"redact":       {{Path: "Patient.name.family", Action: "redact", Replacement: "[family]"}},
	"hash":         {{Path: "Patient.identifier.where(system='urn:mrn').value", Action: "hash"}},
	"generalize":   {{Path: "Patient.birthDate", Action: "generalize"}, {Path: "Patient.address.postalCode", Action: "generalize"}, {Path: "Observation.valueString", Action: "generalize"}},
	"typewide":     {{Path: "HumanName"}, {Path: "Reference.display"}},
	"given":        {{Path: "Patient.name.given", Action: "redact"}, {Path: "Patient.name.family", Action: "hash"}},
	"claims":       {{Path: "Claim.diagnosis"}},
	"ssn-anywhere": {{Path: "Identifier.where(system='http://hl7.org/fhir/sid/us-ssn')"}, {Path: "Identifier.where(system='urn:mrn').value", Action: "hash"}},
	"empty":        nil,
}

// redactGiven is testOptions with a different hash key, to show the
// pseudonyms change with the key.
var redactGiven = Options{HashKey: []byte("another-key-0123456789")}

var testOptions = Options{
	HashKey:      []byte("golden-test-key-0123456789"),
	UpstreamBase: "http://upstream.internal:9090/fhir",
	PublicBase:   "https://gw.example.org/fhir",
}

func testSet(t testing.TB, opts Options) *Set {
	t.Helper()
	s, err := Compile(testProfiles, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dropPatient2 drops Patient/2 wherever it is met and refuses any Account.
var dropPatient2 = CheckFunc(func(rt string, raw []byte, _ Placement) (Verdict, error) {
	var r struct{ ID string }
	if err := json.Unmarshal(raw, &r); err != nil {
		return Refuse, err
	}
	switch {
	case rt == "Account":
		return Refuse, nil
	case rt == "Patient" && r.ID == "2":
		return Drop, nil
	}
	return Keep, nil
})

const patient1 = `{"resourceType":"Patient","id":"1","meta":{"versionId":"7","lastUpdated":"2024-01-02T03:04:05Z"},
 "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Roe, 555-0100</div>"},
 "identifier":[{"system":"http://hl7.org/fhir/sid/us-ssn","value":"123-45-6789"},{"system":"urn:mrn","value":"MRN-42"}],
 "name":[{"family":"Roe","given":["Jane","Q"]}],
 "telecom":[{"system":"phone","value":"555-0100"}],
 "gender":"female","birthDate":"1970-02-03","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"1970-02-03"}]},
 "address":[{"line":["1 Main St"],"city":"Springfield","postalCode":"98765"}],
 "managingOrganization":{"reference":"Organization/9","display":"Springfield Clinic"}}`

const patient2 = `{"resourceType":"Patient","id":"2","telecom":[{"system":"phone","value":"555-0200"}],"name":[{"family":"Doe"}]}`

const observation = `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"note"},
 "subject":{"reference":"Patient/1","display":"Jane Roe"},"valueString":"free text"}`

type goldenCase struct {
	name     string
	profiles []string
	check    Check
	ndjson   bool
	in       string
	opts     *Options
}

func goldenCases() []goldenCase {
	bundle := func(typ string, entries ...string) string {
		var b strings.Builder
		b.WriteString(`{"resourceType":"Bundle","id":"b1","type":"` + typ + `","total":` + string(rune('0'+len(entries))) +
			`,"link":[{"relation":"self","url":"http://upstream.internal:9090/fhir/Patient?_count=2"},{"relation":"other","url":"http://upstream.internal:9090/fhirx/Patient"}],"entry":[`)
		for i, e := range entries {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"fullUrl":"http://upstream.internal:9090/fhir/X/` + string(rune('1'+i)) + `","resource":` + e + `,"search":{"mode":"match"}}`)
		}
		b.WriteString("]}")
		return b.String()
	}
	deep := strings.Repeat(`{"extension":[`, 40) + `{}` + strings.Repeat(`]}`, 40)
	tiny := Options{MaxResourceBytes: 200, HashKey: testOptions.HashKey}
	return []goldenCase{
		// actions, at top level
		{name: "action-remove", profiles: []string{"contact"}, in: patient1},
		{name: "action-redact", profiles: []string{"redact"}, in: patient1},
		{name: "action-hash", profiles: []string{"hash"}, in: patient1},
		{name: "action-generalize", profiles: []string{"generalize"}, in: patient1},
		{name: "action-generalize-not-a-date", profiles: []string{"generalize"}, in: observation},
		{name: "action-none", profiles: []string{"empty"}, in: patient1},
		{name: "action-strongest-wins", profiles: []string{"redact", "typewide"}, in: patient1},
		// placements
		{name: "placement-bundle-entry", profiles: []string{"contact", "hash"}, in: bundle("searchset", patient1, observation, patient2)},
		{name: "placement-contained", profiles: []string{"contact"}, in: `{"resourceType":"Observation","id":"o2","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Roe</div>"},"contained":[` + patient1 + `],"status":"final","code":{"text":"x"},"subject":{"reference":"#1"}}`},
		{name: "placement-nested-bundle", profiles: []string{"contact"}, in: `{"resourceType":"Bundle","type":"batch-response","entry":[{"resource":` + bundle("searchset", patient1, patient2) + `,"response":{"status":"200 OK","location":"http://upstream.internal:9090/fhir/Bundle/x","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"ok"}]}}}]}`},
		{name: "placement-nested-bundle-first-key-not-resourceType", profiles: []string{"contact"}, in: `{"type":"collection","resourceType":"Bundle","entry":[{"resource":` + patient1 + `}]}`},
		{name: "placement-parameters", profiles: []string{"contact"}, in: `{"resourceType":"Parameters","parameter":[{"name":"return","resource":` + patient1 + `},{"name":"group","part":[{"name":"p","resource":` + patient2 + `},{"name":"n","valueString":"x"}]}]}`},
		{name: "placement-ndjson", profiles: []string{"contact", "typewide"}, ndjson: true, in: strings.ReplaceAll(patient1, "\n", "") + "\n\n" + strings.ReplaceAll(observation, "\n", "") + "\r\n" + patient2 + "\n"},
		{name: "placement-claim", profiles: []string{"claims", "typewide"}, in: `{"resourceType":"Claim","id":"c1","status":"active","patient":{"reference":"Patient/1","display":"Jane Roe"},"diagnosis":[{"sequence":1,"diagnosisCodeableConcept":{"text":"secret"}}]}`},
		// checks
		{name: "check-drop-entries", profiles: []string{"contact"}, check: dropPatient2, in: bundle("searchset", patient2, patient1, patient2)},
		{name: "check-drop-all-entries", profiles: []string{"contact"}, check: dropPatient2, in: bundle("searchset", patient2, patient2)},
		{name: "check-drop-contained-and-parameter", profiles: nil, check: dropPatient2, in: `{"resourceType":"Parameters","parameter":[{"name":"a","resource":` + patient2 + `},{"name":"b","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[` + patient2 + `]}}]}`},
		{name: "check-drop-top-level", check: dropPatient2, in: patient2},
		{name: "check-nested-bundle-total", profiles: []string{"generalize"}, check: dropPatient2, in: `{"resourceType":"Parameters","parameter":[{"name":"b","resource":{"resourceType":"Bundle","type":"searchset","total":2,"entry":[{"resource":` + patient2 + `},{"resource":{"resourceType":"Patient","id":"3","gender":"male","_birthDate":{"id":"b"},"active":true}}]}}]}`},
		{name: "check-refuse", check: dropPatient2, in: bundle("searchset", patient1, `{"resourceType":"Account","id":"a","status":"active"}`)},
		{name: "check-drop-ndjson", check: dropPatient2, ndjson: true, in: patient2 + "\n" + strings.ReplaceAll(observation, "\n", "") + "\n"},
		// bypass classes
		{name: "bypass-escaped-keys", profiles: []string{"contact", "generalize"}, in: `{"resourc\u0065Type":"Patient","id":"e","tel\u0065com":[{"value":"555"}],"\u0062irthDate":"1999-09-09","\u0061ddress":[{"line":["x"],"postalCod\u0065":"12345"}],"note\"q":1}`},
		{name: "bypass-escaped-key-in-envelope", profiles: []string{"contact"}, in: `{"resourceType":"Bundle","type":"searchset","\u0065ntry":[{"resource":{"resourceType":"Patient","tel\u0065com":[{"value":"555"}]}}]}`},
		{name: "bypass-escaped-resource-type", profiles: []string{"contact"}, in: `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Pati\u0065nt","telecom":[{"value":"555"}]}}]}`},
		{name: "bypass-duplicate-key", profiles: []string{"contact"}, in: `{"resourceType":"Patient","telecom":[],"telecom":[{"value":"555"}]}`},
		{name: "bypass-duplicate-escaped-key", profiles: []string{"contact"}, in: `{"resourceType":"Patient","telecom":[{"value":"1"}],"tel\u0065com":[{"value":"555"}]}`},
		{name: "bypass-duplicate-key-in-entry", profiles: []string{"contact"}, in: bundle("searchset", `{"resourceType":"Patient","id":"d","name":[{"family":"a","family":"b"}]}`)},
		{name: "bypass-duplicate-envelope-key", profiles: []string{"contact"}, in: `{"resourceType":"Bundle","type":"searchset","entry":[],"entry":[{"resource":` + patient1 + `}]}`},
		{name: "bypass-invalid-utf8", profiles: []string{"contact"}, in: "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"R\xffe\"}]}"},
		{name: "bypass-lone-surrogate", profiles: []string{"contact"}, in: `{"resourceType":"Patient","name":[{"family":"\ud800"}]}`},
		{name: "bypass-deep-nesting", profiles: []string{"contact"}, in: `{"resourceType":"Patient","extension":[` + deep + `]}`},
		{name: "typewide-identifier-where", profiles: []string{"ssn-anywhere"}, in: `{"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/1","identifier":{"system":"http://hl7.org/fhir/sid/us-ssn","value":"123-45-6789"}},"identifier":[{"system":"urn:mrn","value":"MRN-42"},{"system":"urn:other","value":"keep"}],"payor":[{"reference":"Organization/1"}]}`},
		{name: "bypass-reference-display", profiles: []string{"typewide"}, in: bundle("searchset", observation, `{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/1","display":"Jane Roe"},"participant":[{"individual":{"reference":"Practitioner/1","display":"Dr Who"}}]}`)},
		{name: "bypass-narrative-kept-when-nothing-masked", profiles: []string{"claims"}, in: patient1},
		{name: "bypass-narrative-first-member", profiles: []string{"contact"}, in: `{"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">555</div>"},"resourceType":"Patient","telecom":[{"value":"555"}]}`},
		{name: "bypass-primitive-extension", profiles: []string{"contact"}, in: `{"resourceType":"Patient","address":[{"line":["1 Main"],"_line":[{"extension":[{"url":"u","valueString":"1 Main"}]}]}]}`},
		{name: "bypass-trailing-data", profiles: []string{"contact"}, in: patient2 + `{"resourceType":"Patient"}`},
		{name: "bypass-truncated-bundle", profiles: []string{"contact"}, in: bundle("searchset", patient1)[:300]},
		{name: "bypass-not-json", profiles: []string{"contact"}, in: `<Patient xmlns="http://hl7.org/fhir"><id value="1"/></Patient>`},
		{name: "bypass-bom", profiles: []string{"contact"}, in: "\ufeff" + patient2},
		{name: "bypass-unknown-resource-type", profiles: []string{"contact"}, in: `{"resourceType":"Patientx","telecom":[{"value":"555"}]}`},
		{name: "bypass-entry-without-resource-type", profiles: []string{"contact"}, in: bundle("searchset", `{"telecom":[{"value":"555"}]}`)},
		{name: "bypass-complex-element-not-object", profiles: []string{"redact"}, in: `{"resourceType":"Patient","name":[["Roe"]]}`},
		{name: "bypass-envelope-case-variant", profiles: []string{"contact"}, in: `{"resourceType":"Bundle","type":"searchset","Type":"x"}`},
		{name: "bypass-escaped-where-value", profiles: []string{"hash", "contact"}, in: `{"resourceType":"Patient","identifier":[{"system":"urn:\u006drn","value":"MRN-1"},{"system":"http:\/\/hl7.org\/fhir\/sid\/us-ssn","value":"1"}]}`},
		{name: "bypass-case-variant-subject", check: dropPatient2, in: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1"},"Subject":{"reference":"Patient/2"}}`},
		{name: "action-redact-hash-arrays", profiles: []string{"given", "hash"}, opts: &redactGiven, in: patient1},
		{name: "bypass-resource-over-cap", profiles: []string{"contact"}, opts: &tiny, in: bundle("searchset", patient2, patient1)},
	}
}

func TestGolden(t *testing.T) {
	sets := map[*Options]*Set{}
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts == nil {
				opts = &testOptions
			}
			s := sets[opts]
			if s == nil {
				s = testSet(t, *opts)
				sets[opts] = s
			}
			rw, err := s.Rewriter(tc.profiles, tc.check)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			var sum Summary
			if tc.ndjson {
				sum, err = rw.RewriteNDJSON(&out, strings.NewReader(tc.in))
			} else {
				// a reader that returns a few bytes at a time exercises refills
				sum, err = rw.Rewrite(&out, &trickle{s: tc.in, n: 7})
			}
			got := goldenRecord(t, out.Bytes(), sum, err, tc.ndjson)
			path := filepath.Join("testdata", "golden", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update and review):\n%s", path, got)
			}
		})
	}
}

// goldenRecord renders one result for review: the output (indented when it
// is JSON), the summary, and the error.
func goldenRecord(t *testing.T, out []byte, sum Summary, err error, ndjson bool) []byte {
	t.Helper()
	var b bytes.Buffer
	if err != nil {
		b.WriteString("error: " + err.Error() + "\n")
		if !ndjson && len(out) > 0 && json.Valid(out) {
			t.Errorf("a failed rewrite left a complete JSON document: %s", out)
		}
		return b.Bytes()
	}
	lines := [][]byte{out}
	if ndjson {
		lines = bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
	}
	for _, l := range lines {
		var ind bytes.Buffer
		if err := json.Indent(&ind, l, "", "  "); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, l)
		}
		b.Write(ind.Bytes())
		b.WriteString("\n")
	}
	s, _ := json.MarshalIndent(sum, "", "  ")
	b.WriteString("--- summary\n")
	b.Write(s)
	b.WriteString("\n")
	return b.Bytes()
}

// trickle reads n bytes at a time.
type trickle struct {
	s string
	n int
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[k:]
	return k, nil
}
