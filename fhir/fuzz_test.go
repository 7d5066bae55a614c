package fhir

import (
	"net/http"
	"testing"
)

// FuzzClassify checks that Classify never panics and that whatever it
// accepts is well formed: a known interaction, exact resource types, valid
// ids, and entries that carry either a request or an error.
func FuzzClassify(f *testing.F) {
	f.Add("GET", "/Patient/1", "_include=Observation:subject", "", []byte(nil))
	f.Add("POST", "/Observation/_search", "", "application/x-www-form-urlencoded", []byte("code=a,b&_has:Observation:patient:code=1"))
	f.Add("POST", "/", "", "application/fhir+json", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient?name=x"}}]}`))
	f.Add("PATCH", "/Observation/1", "", "application/json-patch+json", []byte(`[{"op":"move","from":"/a","path":"/b"}]`))
	f.Add("GET", "/Patient/1/..;/Observation", "a=%2F", "", []byte(nil))
	f.Fuzz(func(t *testing.T, method, path, query, ct string, body []byte) {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		r, err := Classifier{Bases: []string{"https://gw.example.org/fhir"}}.Classify(method, path, query, h, body)
		if err != nil {
			if r != nil {
				t.Fatalf("request and error both returned")
			}
			return
		}
		checkWellFormed(t, r)
		for _, e := range r.Entries {
			if (e.Request == nil) == (e.Err == nil) {
				t.Fatalf("entry %d has request %v and error %v", e.Index, e.Request, e.Err)
			}
			if e.Request != nil {
				checkWellFormed(t, e.Request)
			}
		}
	})
}

func checkWellFormed(t *testing.T, r *Request) {
	t.Helper()
	if r.Interaction == "" {
		t.Fatalf("no interaction: %+v", r)
	}
	if r.ResourceType != "" && !IsResourceType(r.ResourceType) {
		t.Fatalf("bad type %q", r.ResourceType)
	}
	if r.ID != "" && !validID(r.ID) {
		t.Fatalf("bad id %q", r.ID)
	}
	for _, typ := range r.PullIns.Types {
		if !IsResourceType(typ) {
			t.Fatalf("bad _type %q", typ)
		}
	}
}
