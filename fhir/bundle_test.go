package fhir

import (
	"encoding/base64"
	"net/http"
	"testing"
)

func TestClassifyBatchEntries(t *testing.T) {
	patch := base64.StdEncoding.EncodeToString([]byte(`[{"op":"remove","path":"/note"}]`))
	body := `{"resourceType":"Bundle","type":"batch","entry":[
	 {"request":{"method":"GET","url":"Patient/1"}},
	 {"request":{"method":"GET","url":"Observation?code=x&_include=Observation:subject:Patient"}},
	 {"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=1"},"resource":{"resourceType":"Observation"}},
	 {"request":{"method":"PUT","url":"https://gw.example.org/fhir/Observation/o1"},"resource":{"resourceType":"Observation","id":"o1"}},
	 {"request":{"method":"PATCH","url":"Observation/o2"},"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + patch + `"}},
	 {"request":{"method":"DELETE","url":"Observation/o3"}},
	 {"request":{"method":"GET","url":"https://evil.example.org/fhir/Patient/1"}},
	 {"request":{"method":"GET","url":"https://gw.example.org/fhirx/Patient/1"}},
	 {"request":{"method":"GET","url":"Patient/..%2FObservation"}},
	 {"request":{"method":"POST","url":""},"resource":{"resourceType":"Bundle","type":"batch"}},
	 {"request":{"method":"GET","url":"/Patient/1"}},
	 {"request":{"method":"GET","url":"patient/1"}},
	 {"request":{"method":"HEAD","url":"Patient/1"}},
	 {"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Patient"}},
	 "not an object"
	]}`
	c := Classifier{Bases: []string{"https://gw.example.org/fhir/"}}
	r, err := c.Classify("POST", "/", "", jsonCT, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.Interaction != InteractionBatch {
		t.Fatalf("interaction %s", r.Interaction)
	}
	want := []struct {
		i  Interaction
		rs Reason // "" when accepted
	}{
		{InteractionRead, ""},
		{InteractionSearchType, ""},
		{InteractionCreate, ""},
		{InteractionUpdate, ""},
		{InteractionPatch, ""},
		{InteractionDelete, ""},
		{"", ReasonRequestInvalid}, // absolute URL of another server
		{"", ReasonRequestInvalid}, // prefix match without a "/" boundary
		{"", ReasonPathInvalid},
		{"", ReasonRequestInvalid}, // nested batch: POST "" is refused as a URL first
		{"", ReasonRequestInvalid}, // server-root relative
		{"", ReasonPathInvalid},    // case of the type
		{"", ReasonNotSupported},
		{"", ReasonRequestInvalid}, // body type differs from URL
		{"", ReasonRequestInvalid},
	}
	if len(r.Entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(r.Entries), len(want))
	}
	for i, w := range want {
		e := r.Entries[i]
		if e.Index != i {
			t.Errorf("entry %d has index %d", i, e.Index)
		}
		if w.rs == "" {
			if e.Err != nil || e.Request == nil || e.Request.Interaction != w.i {
				t.Errorf("entry %d: %+v err %v, want %s", i, e.Request, e.Err, w.i)
			}
			continue
		}
		if e.Err == nil || ReasonOf(e.Err) != w.rs || e.Request != nil {
			t.Errorf("entry %d: err %v, want %s", i, e.Err, w.rs)
		}
	}
	if e := r.Entries[2].Request; !e.Conditional || e.Params[0].Value != "1" {
		t.Errorf("conditional create entry: %+v", e)
	}
	if e := r.Entries[1].Request; len(e.PullIns.Include) != 1 {
		t.Errorf("include in entry: %+v", e.PullIns)
	}
	if e := r.Entries[4].Request; e.Patch == nil || e.Patch.Elements[0] != "note" {
		t.Errorf("binary patch entry: %+v", e.Patch)
	}
}

func TestClassifyNestedTransaction(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"request":{"method":"POST","url":"https://gw.example.org/fhir"},"resource":{"resourceType":"Bundle","type":"batch"}}]}`
	r, err := Classifier{Bases: []string{"https://gw.example.org/fhir"}}.Classify("POST", "/", "", jsonCT, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.Interaction != InteractionTransaction || ReasonOf(r.Entries[0].Err) != ReasonNotSupported {
		t.Errorf("nested: %+v %v", r, r.Entries[0].Err)
	}
}

func TestClassifyBadBundles(t *testing.T) {
	for _, body := range []string{
		`{"resourceType":"Bundle","type":"batch","entry":{}}`,
		`{"resourceType":"Bundle","type":"batch","type":"transaction"}`,
		`{"resourceType":"Bundle"}`,
	} {
		if _, err := Classify("POST", "/", "", jsonCT, []byte(body)); ReasonOf(err) != ReasonRequestInvalid {
			t.Errorf("%s: %v", body, err)
		}
	}
	if _, err := Classify("POST", "/", "", http.Header{}, nil); ReasonOf(err) != ReasonRequestInvalid {
		t.Errorf("empty batch body: %v", err)
	}
}

func TestClassifyBinaryPatchValidated(t *testing.T) {
	bad := base64.StdEncoding.EncodeToString([]byte(`[{"op":"remove","path":"/note","path":"/subject"}]`))
	body := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"PATCH","url":"Observation/1"},
	  "resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + bad + `"}}]}`
	r, err := Classify("POST", "/", "", jsonCT, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if ReasonOf(r.Entries[0].Err) != ReasonRequestInvalid {
		t.Errorf("a patch with duplicate keys inside a Binary was accepted: %v", r.Entries[0].Err)
	}
}
