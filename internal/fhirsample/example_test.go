package fhirsample_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/fhirwall/fhirwall/internal/fhirsample"
)

// The demo mounts the server under its FHIR base and sets the base URL
// once the port is known.
func Example() {
	s := fhirsample.New(fhirsample.Options{Seed: 1})
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", s))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	s.SetBaseURL(ts.URL + "/fhir")

	resp, err := http.Get(ts.URL + "/fhir/Observation?patient=pat-001&category=laboratory")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var bundle struct {
		Total int
		Entry []struct{ FullURL string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&bundle); err != nil {
		panic(err)
	}
	fmt.Println(resp.StatusCode, bundle.Total, bundle.Entry[0].FullURL == ts.URL+"/fhir/Observation/obs-001-5")
	// Output: 200 3 true
}
