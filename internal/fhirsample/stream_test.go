package fhirsample

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestWriteSearchset(t *testing.T) {
	tests := []struct {
		entries, total int
	}{{0, 0}, {1, 1}, {2, 1}, {1001, 501}}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := WriteSearchset(&buf, tt.entries, 9); err != nil {
			t.Fatal(err)
		}
		var b struct {
			ResourceType, Type string
			Total              int
			Entry              []struct {
				FullURL  string
				Resource map[string]any
				Search   struct{ Mode string }
			}
		}
		if err := json.Unmarshal(buf.Bytes(), &b); err != nil {
			t.Fatalf("%d entries: invalid JSON: %v", tt.entries, err)
		}
		if b.ResourceType != "Bundle" || b.Type != "searchset" || b.Total != tt.total || len(b.Entry) != tt.entries {
			t.Fatalf("%d entries: got %s %s total %d with %d entries", tt.entries, b.ResourceType, b.Type, b.Total, len(b.Entry))
		}
		for i, e := range b.Entry {
			typ, mode := "Patient", "match"
			if i%2 == 1 {
				typ, mode = "Observation", "include"
			}
			if str(e.Resource, "resourceType") != typ || e.Search.Mode != mode ||
				e.FullURL != StreamBaseURL+"/"+typ+"/"+str(e.Resource, "id") {
				t.Fatalf("entry %d: %s %s %s", i, str(e.Resource, "resourceType"), e.Search.Mode, e.FullURL)
			}
			if str(e.Resource, "meta.tag.0.code") != "synthetic" {
				t.Fatalf("entry %d lacks the synthetic tag", i)
			}
			if typ == "Patient" && !strings.HasPrefix(str(e.Resource, "identifier.1.value"), "999-") {
				t.Fatalf("entry %d: SSN %q", i, str(e.Resource, "identifier.1.value"))
			}
			if typ == "Observation" && str(e.Resource, "subject.reference") != "Patient/"+str(b.Entry[i-1].Resource, "id") {
				t.Fatalf("entry %d: subject %q", i, str(e.Resource, "subject.reference"))
			}
		}
	}
	var a, b, c bytes.Buffer
	_ = WriteSearchset(&a, 50, 1)
	_ = WriteSearchset(&b, 50, 1)
	_ = WriteSearchset(&c, 50, 2)
	if !bytes.Equal(a.Bytes(), b.Bytes()) || bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("output is not determined by the seed")
	}
	if err := WriteSearchset(io.Discard, -1, 1); err == nil {
		t.Error("negative count accepted")
	}
	if err := WriteSearchset(failingWriter{}, 10000, 1); err == nil || !errors.Is(err, errBroken) {
		t.Errorf("write error not returned: %v", err)
	}
}

var errBroken = errors.New("broken pipe")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errBroken }

// BenchmarkWriteSearchset measures generation alone, so that a gateway
// benchmark can subtract it.
func BenchmarkWriteSearchset(b *testing.B) {
	var cw countingWriter
	for b.Loop() {
		if err := WriteSearchset(&cw, 10000, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(cw.n / int64(b.N))
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func ExampleWriteSearchset() {
	var buf bytes.Buffer
	if err := WriteSearchset(&buf, 2, 1); err != nil {
		panic(err)
	}
	var b struct {
		Total int
		Entry []struct{ FullURL string }
	}
	_ = json.Unmarshal(buf.Bytes(), &b)
	fmt.Println(b.Total, b.Entry[0].FullURL, b.Entry[1].FullURL)
	// Output: 1 http://fhirsample.invalid/fhir/Patient/bp-0 http://fhirsample.invalid/fhir/Observation/bo-0
}
