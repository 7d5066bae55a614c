package fhir

import (
	"errors"
	"net/http"
	"slices"
	"testing"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

var jsonCT = hdr("Content-Type", "application/fhir+json")

func TestClassifyInteractions(t *testing.T) {
	obs := []byte(`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/1"}}`)
	tests := []struct {
		name        string
		method      string
		path, query string
		header      http.Header
		body        []byte
		want        Interaction
		typ, id     string
		vid         string
		cond        bool
		op          string
		level       OperationLevel
	}{
		{name: "capabilities", method: "GET", path: "/metadata", want: InteractionCapabilities},
		{name: "read", method: "GET", path: "/Patient/123", want: InteractionRead, typ: "Patient", id: "123"},
		{name: "vread", method: "GET", path: "/Patient/123/_history/2", want: InteractionVRead, typ: "Patient", id: "123", vid: "2"},
		{name: "update", method: "PUT", path: "/Observation/o1", header: jsonCT, body: obs, want: InteractionUpdate, typ: "Observation", id: "o1"},
		{name: "conditional update", method: "PUT", path: "/Observation", query: "identifier=x", header: jsonCT, body: obs, want: InteractionUpdate, typ: "Observation", cond: true},
		{name: "patch", method: "PATCH", path: "/Observation/o1", header: hdr("Content-Type", "application/json-patch+json"), body: []byte(`[{"op":"replace","path":"/status","value":"final"}]`), want: InteractionPatch, typ: "Observation", id: "o1"},
		{name: "conditional patch", method: "PATCH", path: "/Observation", query: "identifier=x", header: hdr("Content-Type", "application/json-patch+json"), body: []byte(`[{"op":"remove","path":"/note"}]`), want: InteractionPatch, typ: "Observation", cond: true},
		{name: "delete", method: "DELETE", path: "/Observation/o1", want: InteractionDelete, typ: "Observation", id: "o1"},
		{name: "conditional delete", method: "DELETE", path: "/Observation", query: "identifier=x", want: InteractionDelete, typ: "Observation", cond: true},
		{name: "history instance", method: "GET", path: "/Observation/o1/_history", want: InteractionHistoryInstance, typ: "Observation", id: "o1"},
		{name: "history type", method: "GET", path: "/Observation/_history", query: "_since=2020-01-01", want: InteractionHistoryType, typ: "Observation"},
		{name: "history system", method: "GET", path: "/_history", want: InteractionHistorySystem},
		{name: "create", method: "POST", path: "/Observation", header: jsonCT, body: obs, want: InteractionCreate, typ: "Observation"},
		{name: "conditional create", method: "POST", path: "/Observation", header: hdr("Content-Type", "application/fhir+json", "If-None-Exist", "identifier=a|b"), body: obs, want: InteractionCreate, typ: "Observation", cond: true},
		{name: "search type", method: "GET", path: "/Observation", query: "code=1234-5", want: InteractionSearchType, typ: "Observation"},
		{name: "search type post", method: "POST", path: "/Observation/_search", header: hdr("Content-Type", "application/x-www-form-urlencoded"), body: []byte("code=1"), want: InteractionSearchType, typ: "Observation"},
		{name: "search system", method: "GET", path: "/", query: "_type=Observation", want: InteractionSearchSystem},
		{name: "search system empty path", method: "GET", path: "", query: "_type=Observation", want: InteractionSearchSystem},
		{name: "search system post", method: "POST", path: "/_search", header: hdr("Content-Type", "application/x-www-form-urlencoded"), body: []byte("_type=Condition"), want: InteractionSearchSystem},
		{name: "search compartment", method: "GET", path: "/Patient/123/Observation", want: InteractionSearchCompartment, typ: "Observation"},
		{name: "search compartment all", method: "GET", path: "/Patient/123/*", want: InteractionSearchCompartment},
		{name: "search compartment post", method: "POST", path: "/Patient/123/Observation/_search", header: hdr("Content-Type", "application/x-www-form-urlencoded"), body: []byte("code=1"), want: InteractionSearchCompartment, typ: "Observation"},
		{name: "operation system get", method: "GET", path: "/$meta", want: InteractionOperation, op: "meta", level: LevelSystem},
		{name: "operation type post", method: "POST", path: "/ValueSet/$expand", header: jsonCT, body: []byte(`{"resourceType":"Parameters"}`), want: InteractionOperation, typ: "ValueSet", op: "expand", level: LevelType},
		{name: "operation instance", method: "GET", path: "/Patient/123/$everything", query: "_type=Observation", want: InteractionOperation, typ: "Patient", id: "123", op: "everything", level: LevelInstance},
		{name: "batch", method: "POST", path: "/", header: jsonCT, body: []byte(`{"resourceType":"Bundle","type":"batch","entry":[]}`), want: InteractionBatch},
		{name: "transaction", method: "POST", path: "", header: jsonCT, body: []byte(`{"resourceType":"Bundle","type":"transaction"}`), want: InteractionTransaction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			r, err := Classify(tt.method, tt.path, tt.query, h, tt.body)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if r.Interaction != tt.want || r.ResourceType != tt.typ || r.ID != tt.id || r.VersionID != tt.vid ||
				r.Conditional != tt.cond || r.Operation != tt.op || r.OperationLevel != tt.level {
				t.Errorf("got %+v", r)
			}
		})
	}
}

func TestClassifyCompartment(t *testing.T) {
	r, err := Classify("GET", "/Patient/123/Observation", "code=x", http.Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.CompartmentType != "Patient" || r.CompartmentID != "123" || r.ResourceType != "Observation" || r.ID != "" {
		t.Errorf("got %+v", r)
	}
	if r.Interaction.AuditCode() != "search-type" {
		t.Errorf("audit code %q", r.Interaction.AuditCode())
	}
	if _, err := Classify("GET", "/Observation/1/Patient", "", http.Header{}, nil); ReasonOf(err) != ReasonPathInvalid {
		t.Errorf("Observation is not a compartment: %v", err)
	}
}

// TestClassifyRefused covers path and parameter confusions: everything an
// upstream might read differently from fhirwall is refused, not normalised.
func TestClassifyRefused(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		path, query string
		header      http.Header
		body        []byte
		reason      Reason
	}{
		{"encoded slash", "GET", "/Patient%2F123", "", nil, nil, ReasonPathInvalid},
		{"encoded slash lower", "GET", "/Patient/1%2f..%2fObservation", "", nil, nil, ReasonPathInvalid},
		{"double encoding", "GET", "/Patient/%252e%252e", "", nil, nil, ReasonPathInvalid},
		{"encoded type letter", "GET", "/%50atient/1", "", nil, nil, ReasonPathInvalid},
		{"dot segment", "GET", "/Patient/./123", "", nil, nil, ReasonPathInvalid},
		{"dotdot segment", "GET", "/Observation/../Patient/1", "", nil, nil, ReasonPathInvalid},
		{"dotdot semicolon", "GET", "/Observation/..;/Patient/1", "", nil, nil, ReasonPathInvalid},
		{"path parameter", "GET", "/Patient;jsessionid=1/123", "", nil, nil, ReasonPathInvalid},
		{"empty segment", "GET", "/Patient//123", "", nil, nil, ReasonPathInvalid},
		{"trailing slash", "GET", "/Patient/123/", "", nil, nil, ReasonPathInvalid},
		{"backslash", "GET", "/Patient\\123", "", nil, nil, ReasonPathInvalid},
		{"control char", "GET", "/Patient/1\x00", "", nil, nil, ReasonPathInvalid},
		{"space", "GET", "/Patient/1 2", "", nil, nil, ReasonPathInvalid},
		{"no leading slash", "GET", "Patient/1", "", nil, nil, ReasonPathInvalid},
		{"lower case type", "GET", "/patient/1", "", nil, nil, ReasonPathInvalid},
		{"upper case type", "GET", "/PATIENT/1", "", nil, nil, ReasonPathInvalid},
		{"abstract type", "GET", "/DomainResource/1", "", nil, nil, ReasonPathInvalid},
		{"id too long", "GET", "/Patient/" + string(make65()), "", nil, nil, ReasonPathInvalid},
		{"bad version", "GET", "/Patient/1/_history/$x", "", nil, nil, ReasonPathInvalid},
		{"too deep", "GET", "/Patient/1/_history/2/x", "", nil, nil, ReasonPathInvalid},
		{"bad operation", "GET", "/$1x", "", nil, nil, ReasonPathInvalid},
		{"unknown method", "TRACE", "/Patient/1", "", nil, nil, ReasonNotSupported},
		{"post to instance", "POST", "/Patient/1", "", jsonCT, []byte(`{"resourceType":"Patient"}`), ReasonNotSupported},
		{"put on type without criteria", "PUT", "/Patient", "", jsonCT, []byte(`{"resourceType":"Patient"}`), ReasonRequestInvalid},
		{"delete on type without criteria", "DELETE", "/Patient", "", nil, nil, ReasonRequestInvalid},
		{"method override header", "POST", "/Observation/_search", "", hdr("Content-Type", "application/x-www-form-urlencoded", "X-HTTP-Method-Override", "DELETE"), []byte("code=1"), ReasonRequestInvalid},
		{"method override param", "GET", "/Observation", "_method=DELETE", nil, nil, ReasonRequestInvalid},
		{"foreign If-None-Exist", "POST", "/Observation", "", hdr("Content-Type", "application/fhir+json", "If-None-Exist", "Patient?identifier=1"), []byte(`{"resourceType":"Observation"}`), ReasonRequestInvalid},
		{"latin1 form", "POST", "/Observation/_search", "", hdr("Content-Type", "application/x-www-form-urlencoded; charset=iso-8859-1"), []byte("code=1"), ReasonRequestInvalid},
		{"semicolon in query", "GET", "/Observation", "code=1;patient=2", nil, nil, ReasonRequestInvalid},
		{"bad escape", "GET", "/Observation", "code=%zz", nil, nil, ReasonRequestInvalid},
		{"control in value", "GET", "/Observation", "code=%00", nil, nil, ReasonRequestInvalid},
		{"case confused control param", "GET", "/Observation", "_INCLUDE=Observation:subject", nil, nil, ReasonRequestInvalid},
		{"duplicate _summary", "GET", "/Observation", "_summary=count&_summary=false", nil, nil, ReasonRequestInvalid},
		{"duplicate _format", "GET", "/Observation", "_format=json&_format=xml", nil, nil, ReasonRequestInvalid},
		{"bad include", "GET", "/Observation", "_include=observation:subject", nil, nil, ReasonRequestInvalid},
		{"include modifier", "GET", "/Observation", "_include:foo=Observation:subject", nil, nil, ReasonRequestInvalid},
		{"include list", "GET", "/Observation", "_include=Observation:subject,Observation:performer", nil, nil, ReasonRequestInvalid},
		{"bad _type", "GET", "/", "_type=observation", nil, nil, ReasonRequestInvalid},
		{"bad _has", "GET", "/Patient", "_has:Observation:patient", nil, nil, ReasonRequestInvalid},
		{"chained control", "GET", "/Patient", "_include.name=x", nil, nil, ReasonRequestInvalid},
		{"xml body", "POST", "/Patient", "", hdr("Content-Type", "application/fhir+xml"), []byte(`<Patient/>`), ReasonNotAcceptable},
		{"no content type", "POST", "/Patient", "", http.Header{}, []byte(`{"resourceType":"Patient"}`), ReasonRequestInvalid},
		{"duplicate json key", "POST", "/Observation", "", jsonCT, []byte(`{"resourceType":"Observation","resourceType":"Patient"}`), ReasonRequestInvalid},
		{"nested duplicate key", "POST", "/Observation", "", jsonCT, []byte(`{"resourceType":"Observation","subject":{"reference":"Patient/1","reference":"Patient/2"}}`), ReasonRequestInvalid},
		{"escaped duplicate key", "POST", "/Observation", "", jsonCT, []byte(`{"resourceType":"Observation","subject":{"reference":"Patient/1"},"subj\u0065ct":{"reference":"Patient/2"}}`), ReasonRequestInvalid},
		{"invalid utf8", "POST", "/Observation", "", jsonCT, []byte("{\"resourceType\":\"Observation\",\"note\":\"\xff\"}"), ReasonRequestInvalid},
		{"trailing json", "POST", "/Observation", "", jsonCT, []byte(`{"resourceType":"Observation"}{}`), ReasonRequestInvalid},
		{"body type mismatch", "POST", "/Observation", "", jsonCT, []byte(`{"resourceType":"Patient"}`), ReasonRequestInvalid},
		{"body id mismatch", "PUT", "/Observation/1", "", jsonCT, []byte(`{"resourceType":"Observation","id":"2"}`), ReasonRequestInvalid},
		{"unknown body type", "POST", "/Observation", "", jsonCT, []byte(`{"resourceType":"observation"}`), ReasonRequestInvalid},
		{"create without body", "POST", "/Observation", "", nil, nil, ReasonRequestInvalid},
		{"get with body", "GET", "/Observation/1", "", jsonCT, []byte(`{}`), ReasonRequestInvalid},
		{"post search json body", "POST", "/Observation/_search", "", jsonCT, []byte(`{}`), ReasonRequestInvalid},
		{"document bundle to base", "POST", "/", "", jsonCT, []byte(`{"resourceType":"Bundle","type":"document"}`), ReasonRequestInvalid},
		{"non bundle to base", "POST", "/", "", jsonCT, []byte(`{"resourceType":"Patient"}`), ReasonRequestInvalid},
		{"if-none-exist on update", "PUT", "/Observation/o1", "", hdr("Content-Type", "application/fhir+json", "If-None-Exist", "x=1"), []byte(`{"resourceType":"Observation","id":"o1"}`), ReasonRequestInvalid},
		{"json patch bad op", "PATCH", "/Observation/1", "", hdr("Content-Type", "application/json-patch+json"), []byte(`[{"op":"merge","path":"/a"}]`), ReasonRequestInvalid},
		{"json patch on create", "POST", "/Observation", "", hdr("Content-Type", "application/json-patch+json"), []byte(`[]`), ReasonRequestInvalid},
		{"fhirpath patch wrong type", "PATCH", "/Observation/1", "", jsonCT, []byte(`{"resourceType":"Observation"}`), ReasonRequestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			r, err := Classify(tt.method, tt.path, tt.query, h, tt.body)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *fhir.Error", err)
			}
			if fe.Reason != tt.reason {
				t.Errorf("reason %s, want %s (%v)", fe.Reason, tt.reason, err)
			}
		})
	}
}

func make65() []byte {
	b := make([]byte, 65)
	for i := range b {
		b[i] = 'a'
	}
	return b
}

func TestClassifySearchParams(t *testing.T) {
	r, err := Classify("POST", "/Observation/_search", "code=a,b&date=ge2020&date=le2021",
		hdr("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
		[]byte("code=c&subject:Patient.name=Smith&value-string=a\\,b,c&status:missing=true&subject.organization:Organization.name=X"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range r.Params {
		keys = append(keys, p.Key)
	}
	want := []string{"code", "date", "date", "code", "subject:Patient.name", "value-string", "status:missing", "subject.organization:Organization.name"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q (URL first, then body, duplicates kept)", keys, want)
	}
	if got := r.Params[0].Values; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("OR values %q", got)
	}
	if got := r.Params[5].Values; !slices.Equal(got, []string{`a\,b`, "c"}) {
		t.Errorf("escaped comma: %q", got)
	}
	if p := r.Params[6]; p.Name != "status" || p.Modifier != "missing" || len(p.Chain) != 0 {
		t.Errorf("modifier: %+v", p)
	}
	chain := r.Params[4]
	if chain.Name != "subject" || chain.Modifier != "Patient" || len(chain.Chain) != 1 || chain.Chain[0].Param != "name" {
		t.Errorf("chain: %+v", chain)
	}
	if types, complete := chain.ChainTypes(); !complete || !slices.Equal(types, []string{"Patient"}) {
		t.Errorf("chain types %v %v", types, complete)
	}
	if types, complete := r.Params[7].ChainTypes(); complete || !slices.Equal(types, []string{"Organization"}) {
		t.Errorf("untyped chain: %v %v", types, complete)
	}
	if len(r.PullIns.Chained) != 2 {
		t.Errorf("chained pull-ins: %+v", r.PullIns.Chained)
	}
}

func TestClassifyPullIns(t *testing.T) {
	q := "_include=Observation:subject:Patient&_include:iterate=Patient:general-practitioner&_revinclude=Provenance:target" +
		"&_revinclude=*&_has:Observation:patient:_has:AuditEvent:entity:agent=x&_type=Observation,Condition" +
		"&_contained=both&_summary=count&_elements=id,status&_total=accurate&_format=json" +
		"&_filter=name eq x&_list=42&_query=current&_has:Observation:subject:performer:Practitioner.name=y"
	r, err := Classify("GET", "/Patient", q, http.Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pi := r.PullIns
	if len(pi.Include) != 2 || pi.Include[0] != (Include{Source: "Observation", Param: "subject", Target: "Patient"}) ||
		!pi.Include[1].Iterate || pi.Include[1].Target != "" {
		t.Errorf("include %+v", pi.Include)
	}
	if len(pi.RevInclude) != 2 || pi.RevInclude[0].Source != "Provenance" || !pi.RevInclude[1].Wildcard {
		t.Errorf("revinclude %+v", pi.RevInclude)
	}
	if len(pi.Has) < 1 || len(pi.Has[0].Hops) != 2 || pi.Has[0].Hops[1] != (HasHop{"AuditEvent", "entity"}) || pi.Has[0].Param != "agent" {
		t.Errorf("has %+v", pi.Has)
	}
	if len(pi.Has) != 2 || pi.Has[1].Target.Modifier != "Practitioner" || len(pi.Has[1].Target.Chain) != 1 {
		t.Errorf("_has with a chained target: %+v", pi.Has)
	}
	if !slices.Equal(pi.Filter, []string{"name eq x"}) || !slices.Equal(pi.List, []string{"42"}) || !slices.Equal(pi.Query, []string{"current"}) {
		t.Errorf("filter/list/query: %+v", pi)
	}
	if !slices.Equal(pi.Types, []string{"Observation", "Condition"}) || pi.Contained != "both" || pi.Summary != "count" ||
		!slices.Equal(pi.Elements, []string{"id", "status"}) || pi.Total != "accurate" || r.Format != "json" {
		t.Errorf("pull-ins %+v format %q", pi, r.Format)
	}
}

func TestClassifyConditionalCreateCriteria(t *testing.T) {
	r, err := Classify("POST", "/Patient", "", hdr("Content-Type", "application/fhir+json", "If-None-Exist", "Patient?identifier=a|b&name:Patient.x=1"),
		[]byte(`{"resourceType":"Patient"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Conditional || len(r.Params) != 2 || r.Params[0].Value != "a|b" || len(r.PullIns.Chained) != 1 {
		t.Errorf("got %+v", r)
	}
}

func TestClassifyPatch(t *testing.T) {
	jp := `[{"op":"replace","path":"/subject/reference","value":"Patient/2"},{"op":"move","from":"/performer/0","path":"/note/0"},{"op":"remove","path":"/a~1b"}]`
	r, err := Classify("PATCH", "/Observation/1", "", hdr("Content-Type", "application/json-patch+json"), []byte(jp))
	if err != nil {
		t.Fatal(err)
	}
	if r.Patch.Kind != PatchJSON || !slices.Equal(r.Patch.Elements, []string{"subject", "note", "performer", "a/b"}) {
		t.Errorf("json patch %+v", r.Patch)
	}
	fp := `{"resourceType":"Parameters","parameter":[
	 {"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.status"},{"name":"value","valueCode":"final"}]},
	 {"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Observation"},{"name":"name","valueString":"subject"}]},
	 {"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Observation.performer.where(reference='x')"}]},
	 {"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"%resource.note"}]}]}`
	r, err = Classify("PATCH", "/Observation/1", "", jsonCT, []byte(fp))
	if err != nil {
		t.Fatal(err)
	}
	if r.Patch.Kind != PatchFHIRPath || !slices.Equal(r.Patch.Elements, []string{"status", "subject", "performer", ""}) {
		t.Errorf("fhirpath patch %+v", r.Patch)
	}
}
