// Command upstream is the benchmark's FHIR server: as fast as a static file
// server, so that what the load benchmark measures is the proxy in front of
// it. It serves canned FHIR R4 JSON, all synthetic:
//
//	GET /fhir/Patient/{id}   a 2 KB Patient (telecom, SSN, birth date: masks have work)
//	GET /fhir/Claim?...      a ~200 KB searchset: Claims with diagnoses and their Patients
//	GET /fhir/Patient?...    a generated searchset of -big-mb MiB (Patients and their
//	                         Observations), streamed by fhirsample.WriteSearchset
//	GET /healthz             200
//
// Query strings are ignored. It prints "listening http://ADDR" on stdout once
// it accepts connections.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fhirwall/fhirwall/internal/fhirsample"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	bigMiB := flag.Int("big-mb", 1024, "size of the big searchset in MiB")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	base := "http://" + ln.Addr().String() + "/fhir"
	patient := mustJSON(patient2K("bench-1", 0))
	search := searchset200K(base)
	entries := bigEntries(int64(*bigMiB) << 20)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /fhir/Patient/{id}", canned(patient))
	mux.HandleFunc("GET /fhir/Claim", canned(search))
	mux.HandleFunc("GET /fhir/Patient", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		// Writes go straight to the connection: no buffering here beyond
		// WriteSearchset's own 32 KB chunks.
		_ = fhirsample.WriteSearchset(w, entries, 42)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening http://%s patient=%dB searchset=%dB big=%d entries (~%d MiB)\n",
		ln.Addr(), len(patient), len(search), entries, *bigMiB)
	_ = os.Stdout.Sync()
	log.Fatal(srv.Serve(ln))
}

// canned serves body as FHIR JSON with a Content-Length.
func canned(body []byte) http.HandlerFunc {
	n := strconv.Itoa(len(body))
	return func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/fhir+json"}
		h["Content-Length"] = []string{n}
		h["Etag"] = []string{`W/"1"`}
		_, _ = w.Write(body)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// bigEntries returns how many WriteSearchset entries make about size bytes,
// from the measured size of a sample.
func bigEntries(size int64) int {
	const sample = 2000
	var c countWriter
	if err := fhirsample.WriteSearchset(&c, sample, 42); err != nil {
		panic(err)
	}
	n := int(size * sample / c.n)
	if n < 2 {
		n = 2
	}
	return n
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)

type obj = map[string]any

func coding(system, code, display string) obj {
	return obj{"coding": []any{obj{"system": system, "code": code, "display": display}}}
}

var synthetic = obj{"tag": []any{obj{"system": fhirsample.DemoTagSystem, "code": "synthetic", "display": "Synthetic demo data, not a real person"}}}

// patient2K is a synthetic Patient of about 2 KB with every element the
// contact-minimum mask touches.
func patient2K(id string, n int) obj {
	family := []string{"Okafor", "Lindqvist", "Tanaka", "Moreau", "Castillo", "Novak"}[n%6]
	given := []string{"Ada", "Bo", "Chen", "Dara", "Emil", "Fatima"}[n%6]
	return obj{
		"resourceType": "Patient",
		"id":           id,
		"meta":         obj{"versionId": "1", "lastUpdated": "2025-01-06T09:00:00Z", "tag": synthetic["tag"]},
		"text": obj{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml"><p>` + given + " " + family +
			`, synthetic benchmark patient. ` + strings.Repeat("No real person. ", 12) + `</p></div>`},
		"identifier": []any{
			obj{"use": "usual", "system": fhirsample.MRNSystem, "value": fmt.Sprintf("MRN-%06d", 100000+n)},
			obj{"use": "official", "type": coding("http://terminology.hl7.org/CodeSystem/v2-0203", "SS", "Social Security number"),
				"system": fhirsample.SSNSystem, "value": fmt.Sprintf("999-%02d-%04d", 1+n%98, 1+n%9998)},
		},
		"active": true,
		"name": []any{
			obj{"use": "official", "family": family, "given": []any{given, "Q."}, "text": given + " Q. " + family},
			obj{"use": "nickname", "given": []any{given[:2]}},
		},
		"telecom": []any{
			obj{"system": "phone", "value": fmt.Sprintf("(555) 555-01%02d", n%100), "use": "home"},
			obj{"system": "phone", "value": fmt.Sprintf("(555) 555-02%02d", n%100), "use": "mobile"},
			obj{"system": "email", "value": fmt.Sprintf("patient%d@example.invalid", n), "use": "home"},
		},
		"gender":    []string{"female", "male"}[n%2],
		"birthDate": fmt.Sprintf("19%02d-0%d-1%d", 40+n%60, 1+n%9, n%10),
		"address": []any{
			obj{"use": "home", "line": []any{fmt.Sprintf("%d Synthetic Street", 10+n%900), "Apt 4"}, "city": "Springfield", "state": "IL", "postalCode": "62701", "country": "US"},
			obj{"use": "old", "line": []any{"1 Example Avenue"}, "city": "Shelbyville", "state": "IL", "postalCode": "62565", "country": "US"},
		},
		"maritalStatus": coding("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "M", "Married"),
		"contact": []any{obj{
			"relationship": []any{coding("http://terminology.hl7.org/CodeSystem/v2-0131", "N", "Next-of-Kin")},
			"name":         obj{"family": family, "given": []any{"Sam"}},
			"telecom":      []any{obj{"system": "phone", "value": "(555) 555-0199"}},
		}},
		"communication":        []any{obj{"language": coding("urn:ietf:bcp:47", "en-US", "English (United States)"), "preferred": true}},
		"managingOrganization": obj{"reference": "Organization/bench-org", "display": "Synthetic General Hospital"},
	}
}

// claim is a synthetic Claim of about 1 KB with diagnoses.
func claim(id, patientID string, n int) obj {
	return obj{
		"resourceType": "Claim",
		"id":           id,
		"meta":         obj{"versionId": "1", "lastUpdated": "2025-01-06T09:00:00Z", "tag": synthetic["tag"]},
		"status":       "active",
		"type":         coding("http://terminology.hl7.org/CodeSystem/claim-type", "professional", "Professional"),
		"use":          "claim",
		"patient":      obj{"reference": "Patient/" + patientID},
		"created":      "2025-01-06",
		"provider":     obj{"reference": "Organization/bench-org"},
		"priority":     coding("http://terminology.hl7.org/CodeSystem/processpriority", "normal", "Normal"),
		"insurance":    []any{obj{"sequence": 1, "focal": true, "coverage": obj{"reference": "Coverage/bench-cov-" + patientID}}},
		"diagnosis": []any{
			obj{"sequence": 1, "diagnosisCodeableConcept": coding(fhirsample.ICD10System, "E11.9", "Type 2 diabetes mellitus without complications")},
			obj{"sequence": 2, "diagnosisCodeableConcept": coding(fhirsample.ICD10System, "I10", "Essential (primary) hypertension")},
		},
		"item": []any{obj{
			"sequence": 1, "diagnosisSequence": []any{1, 2},
			"productOrService": coding("http://www.ama-assn.org/go/cpt", "99213", "Office visit, established patient"),
			"unitPrice":        obj{"value": 120 + n%50, "currency": "USD"},
			"net":              obj{"value": 120 + n%50, "currency": "USD"},
		}},
		"total": obj{"value": 120 + n%50, "currency": "USD"},
	}
}

// searchset200K is GET Claim?_include=Claim:patient as a searchset of about
// 200 KB: claims (match) and their patients (include), URLs on base.
func searchset200K(base string) []byte {
	var entry []any
	const pairs = 60
	for i := range pairs {
		pid := fmt.Sprintf("bench-%d", i)
		cid := fmt.Sprintf("bench-claim-%d", i)
		entry = append(entry, obj{"fullUrl": base + "/Claim/" + cid, "resource": claim(cid, pid, i), "search": obj{"mode": "match"}})
	}
	for i := range pairs {
		pid := fmt.Sprintf("bench-%d", i)
		p := patient2K(pid, i)
		delete(p, "text") // included patients: a little smaller
		entry = append(entry, obj{"fullUrl": base + "/Patient/" + pid, "resource": p, "search": obj{"mode": "include"}})
	}
	return mustJSON(obj{
		"resourceType": "Bundle", "type": "searchset", "total": pairs,
		"link": []any{
			obj{"relation": "self", "url": base + "/Claim?_include=Claim:patient:Patient&_count=60"},
			obj{"relation": "next", "url": base + "/Claim?_include=Claim:patient:Patient&_count=60&_offset=60"},
		},
		"entry": entry,
	})
}
