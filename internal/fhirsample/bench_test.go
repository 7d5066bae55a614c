package fhirsample

import (
	"net/http/httptest"
	"testing"
)

func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		New(Options{Seed: 1})
	}
}

// BenchmarkSearch is one page of a filtered search with an include, the
// common case behind the gateway.
func BenchmarkSearch(b *testing.B) {
	s := New(Options{Seed: 1, BaseURL: "http://bench.example/fhir"})
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/Observation?category=laboratory&_include=Observation:subject", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
