package policy

import (
	"net/http"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// decideBenchMix is a realistic agent workload: mostly reads and searches with
// a few parameters and joins, a conditional create and a small batch.
var decideBenchMix = []struct {
	method, path, query, ct string
	body                    []byte
}{
	{"GET", "/Observation/obs-1", "", "", nil},
	{"GET", "/Patient/123", "", "", nil},
	{"GET", "/Observation", "code=http://loinc.org|4548-4&date=ge2024-01-01&_count=50&_sort=-date", "", nil},
	{"GET", "/Observation", "category=laboratory&_include=Observation:performer:Practitioner", "", nil},
	{"GET", "/Condition", "clinical-status=active&_revinclude=Provenance:target", "", nil},
	{"POST", "/Encounter/_search", "", "application/x-www-form-urlencoded", []byte("date=ge2024-01-01&status=finished&_count=20")},
	{"GET", "/MedicationRequest", "status=active&_include=MedicationRequest:medication:Medication", "", nil},
	{"POST", "/", "", "application/fhir+json", []byte(`{"resourceType":"Bundle","type":"batch","entry":[
	  {"request":{"method":"GET","url":"Patient/123"}},
	  {"request":{"method":"GET","url":"Observation?code=4548-4&_count=5"}},
	  {"request":{"method":"GET","url":"Condition?clinical-status=active"}},
	  {"request":{"method":"GET","url":"AllergyIntolerance"}}]}`)},
}

func decideBench(b *testing.B, subject *Subject) {
	headers := make([]http.Header, len(decideBenchMix))
	for i, m := range decideBenchMix {
		headers[i] = http.Header{}
		if m.ct != "" {
			headers[i].Set("Content-Type", m.ct)
		}
		req, err := fhir.Classify(m.method, m.path, m.query, headers[i], m.body)
		if err != nil {
			b.Fatalf("%s %s: %v", m.method, m.path, err)
		}
		if d := Decide(subject, req); !d.Allow {
			b.Fatalf("%s %s refused: %s %s", m.method, m.path, d.Reason, d.Detail)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m := &decideBenchMix[i%len(decideBenchMix)]
		req, err := fhir.Classify(m.method, m.path, m.query, headers[i%len(decideBenchMix)], m.body)
		if err != nil {
			b.Fatal(err)
		}
		_ = Decide(subject, req)
	}
}

// BenchmarkClassifyDecidePatient: a patient/ agent (narrowing, compartment
// checks set up for every request).
func BenchmarkClassifyDecidePatient(b *testing.B) {
	decideBench(b, &Subject{AgentID: "a", Patient: "123",
		Scopes: authzScopes(b, "patient/*.rs", "patient/Observation.rs?category=laboratory,vital-signs")})
}

// BenchmarkClassifyDecideSystem: a system/ agent with per-type scopes.
func BenchmarkClassifyDecideSystem(b *testing.B) {
	decideBench(b, &Subject{AgentID: "a", Scopes: authzScopes(b, "system/Observation.rs", "system/Patient.rs",
		"system/Practitioner.rs", "system/Condition.rs", "system/Provenance.rs", "system/Encounter.rs",
		"system/MedicationRequest.rs", "system/Medication.rs", "system/AllergyIntolerance.rs")})
}

// BenchmarkResourceCheck: the per-resource response check of a patient/
// search (one compartment evaluation per returned resource).
func BenchmarkResourceCheck(b *testing.B) {
	d := decideFor(b, []string{"patient/Observation.rs"}, "123", "GET", "/Observation", "")
	raw := []byte(authzObsMine)
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := d.Check.CheckResource("Observation", raw, 1); v != CheckKeep {
			b.Fatal("dropped")
		}
	}
}

// BenchmarkClassifyDecideKinds breaks the mix down: a read, a search with
// parameters and an include, and the four-entry batch (patient/ agent).
func BenchmarkClassifyDecideKinds(b *testing.B) {
	subject := &Subject{AgentID: "a", Patient: "123", Scopes: authzScopes(b, "patient/*.rs")}
	for _, k := range []struct {
		name string
		i    int
	}{{"read", 0}, {"search", 3}, {"post-search", 5}, {"batch4", 7}} {
		m := decideBenchMix[k.i]
		h := http.Header{}
		if m.ct != "" {
			h.Set("Content-Type", m.ct)
		}
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, err := fhir.Classify(m.method, m.path, m.query, h, m.body)
				if err != nil {
					b.Fatal(err)
				}
				if d := Decide(subject, req); !d.Allow {
					b.Fatal(d.Detail)
				}
			}
		})
	}
}
