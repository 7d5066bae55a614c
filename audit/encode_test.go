package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// awkwardStrings need every kind of escaping encoding/json does, and some
// that it does not (non-ASCII is copied as is).
var awkwardStrings = []string{
	`<script>alert("x")</script> & more`,
	`quote " backslash \ slash /`,
	"controls \x00\x01\x08\x0c\x0a\x0d\x09\x1b\x1f\x7f end",
	"non-ASCII é 漢字 🙂 \u00a0",
	"invalid UTF-8 \xff\xfe \xc3 \xe2\x80 \xed\xa0\x80 end",
	"separators \u2028 and \u2029 and \u2027",
	"access_token=secret-token&a=<1>&b=\"2\"",
	"",
}

// phases are all the phases an event is built in; closed intents (the
// incomplete phase) are built with PhaseIntent and then markIncomplete.
var phases = []string{PhaseIntent, PhaseComplete, PhaseIncomplete}

// accessVariants edit agentAccess into every shape buildEvent
// distinguishes: decisions, failures, optional parts present and absent.
var accessVariants = []struct {
	name string
	edit func(a *Access)
}{
	{"as-is", func(*Access) {}},
	{"deny", func(a *Access) {
		a.Decision, a.Reason, a.Status, a.Resources, a.Masks = DecisionDeny, "scope-missing", 403, nil, nil
	}},
	{"shadow-deny", func(a *Access) { a.Decision = DecisionShadowDeny }},
	{"no-decision", func(a *Access) { a.Decision = "" }},
	{"failed", func(a *Access) {
		a.Failed, a.Reason, a.Status, a.FailureDetail = true, "upstream-unavailable", 502, "dial tcp 10.0.0.9:443: connect: <refused>"
	}},
	{"failed-no-status", func(a *Access) { a.Failed, a.Status, a.FailureDetail = true, 0, "client gone" }},
	{"refused", func(a *Access) { a.Reason, a.Status = "rate-limited", 429 }},
	{"internal-error", func(a *Access) { a.Reason, a.Status = "internal-error", 500 }},
	{"bare", func(a *Access) {
		a.Patients, a.Resources, a.Masks, a.ResponseSHA256, a.ResponseBytes, a.PolicyVersion = nil, nil, nil, "", 0, ""
		a.Agent.Roles, a.Agent.PurposeOfUse, a.Agent.JTI, a.Agent.Issuer = nil, nil, "", ""
	}},
	{"unauthenticated", func(a *Access) { a.Agent = Agent{} }},
	{"client-is-agent", func(a *Access) { a.Agent.ClientID = a.Agent.ID }},
	{"many", func(a *Access) {
		a.Patients = []string{"9", "Patient/1", "1", "Patient/", "", "5"}
		a.Resources = []ResourceRef{{"Patient", "1", ""}, {"Observation", "o1", "7"}, {"", "x", ""}, {"Patient", "1", "2"}}
		a.Masks = append(a.Masks, MaskApplied{Profile: "notes", Path: "Observation.note", Count: 0})
		a.Agent.Roles = []string{"billing", "nurse"}
		a.Agent.PurposeOfUse = []string{"TREAT", "HPAYMT"}
	}},
	{"part", func(a *Access) { a.Part = 3 }},
	{"sha-only", func(a *Access) { a.ResponseBytes = 0 }},
	{"bytes-only", func(a *Access) { a.ResponseSHA256, a.ResponseBytes = "", 1<<40+1 }},
	{"ipv6", func(a *Access) { a.SourceAddr = "[2001:db8::1]:51234" }},
	{"host-only", func(a *Access) { a.SourceAddr = "10.1.2.3" }},
	{"hostname", func(a *Access) { a.SourceAddr = "client.example.org:443" }},
	{"no-addr", func(a *Access) { a.SourceAddr = "" }},
	{"no-times", func(a *Access) { a.Start, a.End = time.Time{}, time.Time{} }},
	{"no-end", func(a *Access) { a.End = time.Time{} }},
	{"no-request-id", func(a *Access) { a.RequestID = "" }},
	{"no-method", func(a *Access) { a.Method, a.Route, a.Path = "", "", "" }},
	{"awkward", func(a *Access) {
		s := strings.Join(awkwardStrings, "|")
		a.Query, a.Path, a.Route, a.FailureDetail, a.PolicyVersion = s, "/fhir/"+s, s, s, s
		a.Agent.ID, a.Agent.ClientID, a.Agent.Issuer, a.Agent.JTI = s, s+"c", s, s
		a.Agent.Roles, a.Agent.PurposeOfUse = awkwardStrings, awkwardStrings
		a.Patients = awkwardStrings
		a.Resources = []ResourceRef{{s, s, s}}
		a.Masks = []MaskApplied{{s, s, -1}}
		a.RequestID, a.Reason, a.Decision, a.ResponseSHA256 = s, s, s, s
	}},
}

var interactions = []string{
	"read", "vread", "update", "patch", "delete", "history-instance", "history-type",
	"history-system", "create", "search-type", "search-system", "search", "capabilities",
	"batch", "transaction", "operation", "",
}

// buildAll builds an event for every interaction × variant × phase, with
// and without a known server address, through the real code path, and the
// events of the golden tests.
func buildAll() map[string]fm.AuditEvent {
	out := map[string]fm.AuditEvent{}
	ecs := []eventContext{testEC, {source: "gw-<2>"}, {source: "gw-3", serverAddr: "[fd00::5]:8443"}}
	for _, in := range interactions {
		for _, v := range accessVariants {
			for _, phase := range phases {
				for i, ec := range ecs {
					a := agentAccess()
					a.Interaction = in
					if in == "" {
						a.Method = []string{"GET", "post", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}[len(out)%7]
					}
					if strings.HasPrefix(in, "search") {
						a.Query = "name=x&access_token=t&_count=3"
					}
					v.edit(a)
					name := fmt.Sprintf("%s/%s/%s/ec%d", in, v.name, phase, i)
					out[name] = buildPhase(a, name, phase, ec)
				}
			}
		}
	}
	for _, c := range eventCases {
		_, ev := buildCase(c)
		out["golden/"+c.name] = ev
	}
	return out
}

// buildPhase builds the event of a in phase; an incomplete event is an
// intent closed by markIncomplete, as closeUnfinished does.
func buildPhase(a *Access, id, phase string, ec eventContext) fm.AuditEvent {
	if phase == PhaseIncomplete {
		ev := buildEvent(a, id, t0, PhaseIntent, ec)
		markIncomplete(&ev, t0.Add(time.Hour))
		return ev
	}
	return buildEvent(a, id, t0.Add(time.Second), phase, ec)
}

// assertSameEncoding fails unless the hand-written encoder takes the fast
// path for ev and writes exactly what MarshalJSON does.
func assertSameEncoding(t *testing.T, name string, ev *fm.AuditEvent) {
	t.Helper()
	want, err := ev.MarshalJSON()
	if err != nil {
		t.Fatalf("%s: MarshalJSON: %v", name, err)
	}
	got, ok := appendEvent(nil, ev)
	if !ok {
		t.Fatalf("%s: the encoder fell back on an event buildEvent made", name)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: encodings differ\nfast:   %s\nsamply: %s", name, got, want)
	}
}

// TestEncodeEventMatchesSamply is the differential test: every event
// buildEvent makes is encoded exactly as the samply model encodes it, also
// after the round trip through the store that closeUnfinished and
// closeAbandoned make (unmarshal, mark, encode again).
func TestEncodeEventMatchesSamply(t *testing.T) {
	all := buildAll()
	for name, ev := range all {
		assertSameEncoding(t, name, &ev)

		// The writer and recovery encoded with json.Marshal(ev); it calls
		// MarshalJSON and compacts its (already compact) output.
		viaMarshal, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		body, err := encodeEvent(&ev)
		if err != nil || !bytes.Equal(body, viaMarshal) {
			t.Fatalf("%s: encodeEvent differs from json.Marshal (%v)\n%s\n%s", name, err, body, viaMarshal)
		}

		back, err := fm.UnmarshalAuditEvent(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		markRefused(&back, t0.Add(time.Minute))
		assertSameEncoding(t, name+"/refused", &back)
	}
	if len(all) < 1000 {
		t.Errorf("only %d events built", len(all))
	}
}

// TestEncodeEventEdges covers what buildEvent never makes but the models
// allow and the encoder writes itself.
func TestEncodeEventEdges(t *testing.T) {
	base := func() fm.AuditEvent { _, ev := buildCase(eventCases[0]); return ev }
	cases := map[string]func(ev *fm.AuditEvent){
		"nil-agents":       func(ev *fm.AuditEvent) { ev.Agent = nil },
		"empty-agents":     func(ev *fm.AuditEvent) { ev.Agent = []fm.AuditEventAgent{} },
		"empty-entities":   func(ev *fm.AuditEvent) { ev.Entity = []fm.AuditEventEntity{} },
		"zero-event":       func(ev *fm.AuditEvent) { *ev = fm.AuditEvent{} },
		"unknown-action":   func(ev *fm.AuditEvent) { ev.Action = ptr(fm.AuditEventAction(99)) },
		"unknown-outcome":  func(ev *fm.AuditEvent) { ev.Outcome = ptr(fm.AuditEventOutcome(-1)) },
		"unknown-network":  func(ev *fm.AuditEvent) { ev.Agent[1].Network.Type = ptr(fm.AuditEventAgentNetworkType(7)) },
		"empty-strings":    func(ev *fm.AuditEvent) { ev.Id, ev.OutcomeDesc, ev.Agent[0].AltId = ptr(""), ptr(""), ptr("") },
		"empty-decimal":    func(ev *fm.AuditEvent) { ev.Extension[0].ValueDecimal = ptr(json.Number("")) },
		"negative-decimal": func(ev *fm.AuditEvent) { ev.Extension[0].ValueDecimal = ptr(json.Number("-120")) },
		"zero-decimal":     func(ev *fm.AuditEvent) { ev.Extension[0].ValueDecimal = ptr(json.Number("0")) },
		"false-boolean":    func(ev *fm.AuditEvent) { ev.Extension[0].ValueBoolean = ptr(false) },
		"empty-profile":    func(ev *fm.AuditEvent) { ev.Meta = &fm.Meta{Profile: []string{}} },
		"detail": func(ev *fm.AuditEvent) {
			ev.Entity[0].Detail = []fm.AuditEventEntityDetail{{Type: "a<b"}, {ValueBase64Binary: "AAEC"}}
			ev.Entity[0].Description, ev.Entity[0].Name = ptr("d&d"), ptr("")
		},
		"purpose-of-event": func(ev *fm.AuditEvent) {
			ev.PurposeOfEvent = []fm.CodeableConcept{concept(SystemActReason, "TREAT", ""), {Text: ptr("t")}}
		},
	}
	for name, edit := range cases {
		ev := base()
		edit(&ev)
		assertSameEncoding(t, name, &ev)
	}
}

// TestEncodeEventFallback: a field the encoder does not write makes
// encodeEvent use MarshalJSON, whose output it then returns unchanged.
func TestEncodeEventFallback(t *testing.T) {
	cases := map[string]func(ev *fm.AuditEvent){
		"narrative": func(ev *fm.AuditEvent) {
			ev.Text = &fm.Narrative{Status: fm.NarrativeStatusGenerated, Div: `<div xmlns="http://www.w3.org/1999/xhtml">x</div>`}
		},
		"complex-extension-value": func(ev *fm.AuditEvent) {
			ev.Entity[1].Extension = append(ev.Entity[1].Extension, fm.Extension{Url: "q", ValueQuantity: &fm.Quantity{Unit: ptr("mg")}})
		},
		"nested-complex-value": func(ev *fm.AuditEvent) {
			ev.Agent[0].Role[0].Coding[0].Extension = []fm.Extension{{Url: "r", ValueReference: &fm.Reference{Display: ptr("x")}}}
		},
		"fractional-decimal": func(ev *fm.AuditEvent) { ev.Extension[0].ValueDecimal = ptr(json.Number("1.5")) },
		"exponent-decimal":   func(ev *fm.AuditEvent) { ev.Extension[0].ValueDecimal = ptr(json.Number("1e3")) },
	}
	for name, edit := range cases {
		_, ev := buildCase(eventCases[0])
		edit(&ev)
		if _, ok := appendEvent(nil, &ev); ok {
			t.Errorf("%s: the encoder claims a field it does not write", name)
		}
		want, err := ev.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := encodeEvent(&ev)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: fallback output differs (%v)\n%s\n%s", name, err, got, want)
		}
	}

	// An invalid number is an error of MarshalJSON, which the fallback
	// passes on.
	for _, n := range []json.Number{"12abc", "007", "-", "1."} {
		_, ev := buildCase(eventCases[0])
		ev.Extension[0].ValueDecimal = &n
		if _, err := encodeEvent(&ev); err == nil {
			t.Errorf("invalid decimal %q encoded without error", n)
		}
	}
}

// TestEncodeEventFieldCoverage guards the encoder against the models: it
// sets each field of every struct reachable from AuditEvent, one at a
// time, to a non-zero value and requires either identical output or a
// fallback, and fallbacks only where the encoder means to take them (the
// narrative, complex extension values). A field added by a new samply
// version fails here until the encoder handles it.
func TestEncodeEventFieldCoverage(t *testing.T) {
	_, ev := buildCase(eventCases[0])
	fellBack := map[string]bool{}
	check := func(field string) bool {
		t.Helper()
		want, err := ev.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", field, err)
		}
		got, ok := appendEvent(nil, &ev)
		if !ok {
			fellBack[field] = true
			return false
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encodings differ\nfast:   %s\nsamply: %s", field, got, want)
		}
		return true
	}
	seen := map[reflect.Type]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		typ := v.Type()
		if seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := v.Field(i)
			name := typ.Name() + "." + typ.Field(i).Name
			old := reflect.New(f.Type()).Elem()
			old.Set(f)
			if f.Kind() != reflect.Struct { // Type, Source, Observer: never empty
				f.Set(sampleValue(f.Type()))
				if !check(name) {
					f.Set(old)
					continue // the encoder stops here: nothing to look at inside
				}
			}
			if inner := structIn(f); inner.IsValid() {
				walk(inner)
			}
			f.Set(old)
		}
	}
	walk(reflect.ValueOf(&ev).Elem())

	want := map[string]bool{"AuditEvent.Text": true}
	ext := reflect.TypeFor[fm.Extension]()
	for i := range ext.NumField() {
		if f := ext.Field(i); f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
			want["Extension."+f.Name] = true
		}
	}
	for f := range fellBack {
		if !want[f] {
			t.Errorf("the encoder falls back on %s", f)
		}
	}
	for f := range want {
		if !fellBack[f] {
			t.Errorf("the encoder does not fall back on %s", f)
		}
	}
	if len(seen) < 13 {
		t.Errorf("walked only %d struct types", len(seen))
	}
}

// structIn is the struct held in f (directly, through a pointer, or as a
// slice's first element), or the zero Value.
func structIn(f reflect.Value) reflect.Value {
	switch {
	case f.Kind() == reflect.Struct:
		return f
	case f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.Struct:
		return f.Elem()
	case f.Kind() == reflect.Slice && f.Len() > 0 && f.Index(0).Kind() == reflect.Struct:
		return f.Index(0)
	}
	return reflect.Value{}
}

// sampleValue is a non-zero value of type t: a pointer to an empty struct,
// a slice of one empty struct, or a primitive that needs escaping.
func sampleValue(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if t.Elem().Kind() != reflect.Struct {
			p.Elem().Set(sampleValue(t.Elem()))
		}
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(t, 1, 1)
		if t.Elem().Kind() != reflect.Struct {
			s.Index(0).Set(sampleValue(t.Elem()))
		}
		v.Set(s)
	case reflect.String:
		if t == reflect.TypeFor[json.Number]() {
			v.SetString("-42")
		} else {
			v.SetString(awkwardStrings[0] + awkwardStrings[2] + awkwardStrings[4])
		}
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int:
		v.SetInt(1) // an enum's second code
	}
	return v
}

// FuzzEncodeEvent: whatever the strings of an access, the encoder takes
// the fast path and writes exactly what MarshalJSON does.
func FuzzEncodeEvent(f *testing.F) {
	for _, s := range awkwardStrings {
		f.Add("read", "GET", "/fhir/Patient/1", s, "agent", "client", "role", "1", "Observation", "o1", "10.0.0.1:9", s, 200, 0, int64(10), uint8(1))
	}
	f.Add("search-type", "GET", "/fhir/Observation", "code=a&access_token=x", "", "", "", "Patient/", "", "", "[::1]:1", "", 0, 2, int64(0), uint8(0))
	f.Add("", "DELETE", "", "", Unauthenticated, "", "", "", "", "", "", "", 500, 0, int64(-1), uint8(2))
	f.Fuzz(func(t *testing.T, interaction, method, path, query, agentID, clientID, role, patient,
		resType, resID, addr, detail string, status, part int, size int64, phase uint8) {
		a := agentAccess()
		a.Interaction, a.Method, a.Path, a.Query = interaction, method, path, query
		a.Agent.ID, a.Agent.ClientID, a.Agent.Issuer, a.Agent.JTI = agentID, clientID, detail, role
		a.Agent.Roles, a.Agent.PurposeOfUse = []string{role}, []string{detail}
		a.Patients = []string{patient, "Patient/" + resID}
		a.Resources = []ResourceRef{{resType, resID, detail}, {"Patient", patient, ""}}
		a.ResourceType, a.ResourceID = resType, resID
		a.Masks = []MaskApplied{{role, path, status}}
		a.SourceAddr, a.Route, a.RequestID, a.PolicyVersion = addr, role, detail, path
		a.Decision, a.Reason, a.FailureDetail, a.ResponseSHA256 = role, detail, detail, query
		a.Status, a.Part, a.ResponseBytes = status, part, size
		a.Failed = status < 0
		ec := eventContext{source: agentID, serverAddr: addr}
		ev := buildPhase(a, resID, phases[int(phase)%len(phases)], ec)
		assertSameEncoding(t, "fuzz", &ev)
	})
}

// searchAccess is a search that disclosed many resources of many
// patients: a large event.
func searchAccess(resources, patients int) *Access {
	a := agentAccess()
	a.Interaction, a.Path, a.Query = "search-type", "/fhir/Observation", "code=1234-5&_count=200"
	a.ResourceType, a.ResourceID = "Observation", ""
	a.Resources, a.Patients = nil, nil
	for i := range resources {
		a.Resources = append(a.Resources, ResourceRef{"Observation", fmt.Sprintf("obs-%d", i), "1"})
	}
	for i := range patients {
		a.Patients = append(a.Patients, fmt.Sprintf("pat-%d", i))
	}
	return a
}

// BenchmarkEncodeEvent compares the samply encoding with encodeEvent (fast
// path, exactly sized copy) on a completed read and on a search event with
// 120 resources of 60 patients.
func BenchmarkEncodeEvent(b *testing.B) {
	for _, c := range []struct {
		name string
		a    *Access
	}{
		{"read", agentAccess()},
		{"search-120", searchAccess(120, 60)},
	} {
		ev := buildEvent(c.a, "ev-bench", t0.Add(time.Second), PhaseComplete, testEC)
		b.Run(c.name+"/samply", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ev.MarshalJSON(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encodeEvent(&ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
