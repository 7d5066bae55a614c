package masking

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// Check sees every resource, outermost first, with its placement and its
// own raw bytes.
func TestCheckSeesEveryResource(t *testing.T) {
	s := testSet(t, testOptions)
	var got []string
	check := CheckFunc(func(rt string, raw []byte, where Placement) (Verdict, error) {
		if !bytes.HasPrefix(raw, []byte("{")) || !bytes.HasSuffix(raw, []byte("}")) {
			t.Errorf("raw for %s is not one object: %s", rt, raw)
		}
		got = append(got, rt+"@"+where.String())
		return Keep, nil
	})
	rw, _ := s.Rewriter([]string{"contact"}, check)
	in := `{"resourceType":"Bundle","type":"batch-response","entry":[
	 {"resource":{"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Observation","status":"final","code":{},"contained":[{"resourceType":"Patient"}]}}]}},
	 {"resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"x"}}]},
	  "response":{"status":"200","outcome":{"resourceType":"OperationOutcome","issue":[]}}}]}`
	if _, err := rw.Rewrite(&bytes.Buffer{}, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	want := "Parameters@bundle-entry Observation@parameters-resource Patient@contained Bundle@bundle-entry Patient@bundle-entry OperationOutcome@bundle-entry-outcome"
	if strings.Join(got, " ") != want {
		t.Fatalf("checks:\n got  %s\n want %s", strings.Join(got, " "), want)
	}
}

// A Check's own error ends the rewrite and comes back unchanged.
func TestCheckErrorPropagates(t *testing.T) {
	s := testSet(t, testOptions)
	boom := fhir.Errorf(fhir.ReasonPatientBudget, "budget")
	rw, _ := s.Rewriter(nil, CheckFunc(func(string, []byte, Placement) (Verdict, error) { return Keep, boom }))
	_, err := rw.Rewrite(&bytes.Buffer{}, strings.NewReader(patient2))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	rw, _ = s.Rewriter(nil, CheckFunc(func(string, []byte, Placement) (Verdict, error) { return Verdict(42), nil }))
	if _, err := rw.Rewrite(&bytes.Buffer{}, strings.NewReader(patient2)); !errors.Is(err, ErrRefused) {
		t.Fatalf("unknown verdict: err = %v, want a refusal", err)
	}
}

// The same value hashes to the same pseudonym in every response and every
// Rewriter of a Set, and to another one under another key.
func TestHashIsStablePseudonym(t *testing.T) {
	pseudonym := func(key string, in string) string {
		s, err := Compile(map[string][]RuleSpec{"h": {{Path: "Patient.identifier.value", Action: "hash"}}}, Options{HashKey: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		rw, _ := s.Rewriter([]string{"h"}, nil)
		var out bytes.Buffer
		if _, err := rw.Rewrite(&out, strings.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		return out.String()[:strings.Index(out.String(), `"meta"`)]
	}
	a := pseudonym("key-0123456789abcdef", `{"resourceType":"Patient","identifier":[{"value":"MRN-1"}]}`)
	b := pseudonym("key-0123456789abcdef", `{"resourceType":"Patient","identifier":[{"value":"MRN-\u0031"}]}`)
	c := pseudonym("other-0123456789abcdef", `{"resourceType":"Patient","identifier":[{"value":"MRN-1"}]}`)
	if a != b || a == c || strings.Contains(a, "MRN") {
		t.Fatalf("pseudonyms: %s / %s / %s", a, b, c)
	}
}

// One Rewriter serves concurrent responses (each Rewrite has its own
// buffers from the pool) with identical results.
func TestRewriterConcurrent(t *testing.T) {
	s := testSet(t, testOptions)
	rw, _ := s.Rewriter([]string{"contact", "typewide", "hash"}, nil)
	var in string
	for _, tc := range goldenCases() {
		if tc.name == "placement-bundle-entry" {
			in = tc.in
		}
	}
	var want bytes.Buffer
	if _, err := rw.Rewrite(&want, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 50 {
				var out bytes.Buffer
				if _, err := rw.Rewrite(&out, strings.NewReader(in)); err != nil || !bytes.Equal(out.Bytes(), want.Bytes()) {
					errs <- errors.New("concurrent rewrite differs")
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestOnResourcesHandsOffAsTheStreamGoes(t *testing.T) {
	set, err := Compile(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","id":"b1","type":"searchset","entry":[`)
	const n = 2500
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"resource":{"resourceType":"Patient","id":"p%d","meta":{"versionId":"1"}}}`, i)
	}
	b.WriteString(`]}`)
	rw, err := set.Rewriter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var batches, handed int
	seen := map[string]bool{}
	rw.OnResources(func(refs []ResourceRef) {
		batches++
		handed += len(refs)
		for _, r := range refs {
			seen[r.Type+"/"+r.ID+"/"+r.Version] = true
		}
	})
	sum, err := rw.Rewrite(io.Discard, strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sum.Resources {
		seen[r.Type+"/"+r.ID+"/"+r.Version] = true
	}
	if batches != 2 || handed != 2000 || len(sum.Resources) != n-2000+1 {
		t.Fatalf("batches %d, handed %d, left %d", batches, handed, len(sum.Resources))
	}
	if !seen["Bundle/b1/"] || !seen["Patient/p0/1"] || !seen[fmt.Sprintf("Patient/p%d/1", n-1)] || len(seen) != n+1 {
		t.Fatalf("%d distinct refs; the Bundle or an entry is missing", len(seen))
	}
}
