package fhirsample

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden pins the exact output for seed 1, so that a change to the
// data or the wire format is seen in review. Regenerate with -update.
func TestGolden(t *testing.T) {
	s := New(Options{Seed: 1, BaseURL: "http://golden.example/fhir"})
	s.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	tests := []struct{ name, target string }{
		{"capability", "/metadata"},
		{"patient", "/Patient/pat-001"},
		{"claim", "/Claim/claim-001-1"},
		{"search-include", "/Observation?patient=pat-001&category=laboratory&_count=2&_include=Observation:subject"},
		{"not-found", "/Patient/nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("GET", tt.target, nil))
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", tt.name+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("GET %s differs from %s (run with -update and review the diff)", tt.target, path)
			}
		})
	}
}
