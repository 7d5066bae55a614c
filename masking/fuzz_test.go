package masking

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fuzzProfiles are the rules whose effect FuzzRewrite verifies in the
// output, as encoding/json (a typical client parser) reads it.
var fuzzProfiles = map[string][]RuleSpec{
	"f": {
		{Path: "Patient.telecom"},
		{Path: "HumanName"},
		{Path: "Reference.display"},
		{Path: "Patient.birthDate", Action: "generalize"},
		{Path: "Patient.identifier.where(system='s').value", Action: "hash"},
		{Path: "Observation.value"},
	},
}

// dropID2 drops every resource with id "2".
var dropID2 = CheckFunc(func(rt string, raw []byte, _ Placement) (Verdict, error) {
	var r struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &r) == nil && string(r.ID) == `"2"` {
		return Drop, nil
	}
	return Keep, nil
})

func FuzzRewrite(f *testing.F) {
	for _, tc := range goldenCases() {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`{"resourceType":"Patient","id":"2"}`))
	f.Add([]byte(`{"resourceType":"Patient","x":1,"_birthDate":{},"y":2,"telecom":[{}],"z":3,"birthDate":"1999-01-01","name":[{"text":"a"}],"w":4}`))
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"b","resource":{"resourceType":"Bundle","type":"searchset","total":2,"entry":[{"resource":{"resourceType":"Patient","id":"2"}},{"resource":{"resourceType":"Observation","id":"3","valueString":"x","subject":{"display":"y","reference":"z"}}}]}}]}`))
	f.Add([]byte("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"s\",\"value\":\"v\"},{\"system\":\"t\",\"value\":\"w\"}]}\n{\"resourceType\":\"Observation\",\"valueQuantity\":{}}\n"))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","valueString":"x","contained":[{"resourceType":"Patient","telecom":[{}]}]}}]}`))
	s, err := Compile(fuzzProfiles, Options{HashKey: testOptions.HashKey, MaxDepth: 32, MaxResourceBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	rw, err := s.Rewriter([]string{"f"}, dropID2)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		_, err := rw.Rewrite(&out, bytes.NewReader(in))
		if err != nil {
			if json.Valid(out.Bytes()) && out.Len() > 0 {
				t.Fatalf("failed rewrite (%v) left a complete document: %s", err, out.Bytes())
			}
		} else {
			if !json.Valid(in) {
				t.Fatalf("accepted input that encoding/json rejects: %q", in)
			}
			verifyMasked(t, out.Bytes())
		}
		out.Reset()
		if _, err := rw.RewriteNDJSON(&out, bytes.NewReader(in)); err == nil {
			for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
				if len(line) > 0 {
					verifyMasked(t, line)
				}
			}
		}
	})
}

// verifyMasked parses out with encoding/json and fails if any value the
// fuzz rules mask is still there.
func verifyMasked(t *testing.T, out []byte) {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("output is not an object: %s", out)
	}
	if err := checkResource(obj); err != nil {
		t.Fatalf("%v\noutput: %s", err, out)
	}
}

func checkResource(obj map[string]any) error {
	rt, _ := obj["resourceType"].(string)
	t := schema().resources[rt]
	if t == nil {
		return fmt.Errorf("resource of unknown type %q in output", rt)
	}
	if id, _ := obj["id"].(string); id == "2" {
		return fmt.Errorf("dropped resource %s/2 in output", rt)
	}
	return checkObject(obj, t, rt)
}

func checkObject(obj map[string]any, t *typeInfo, path string) error {
	for k, v := range obj {
		p := path + "." + k
		switch {
		case t.name == "Patient" && (k == "telecom" || k == "_telecom"):
			return fmt.Errorf("%s survived", p)
		case t.name == "Reference" && (k == "display" || k == "_display"):
			return fmt.Errorf("%s survived", p)
		case t.name == "Observation" && (slices.Contains(t.choices["value"], k) || slices.Contains(t.choices["value"], strings.TrimPrefix(k, "_"))):
			return fmt.Errorf("%s survived", p)
		case t.name == "Patient" && k == "birthDate":
			if s, ok := v.(string); !ok || len(s) != 4 {
				return fmt.Errorf("%s not generalized: %v", p, v)
			}
		case t.name == "Patient" && k == "_birthDate":
			return fmt.Errorf("%s survived", p)
		case t.name == "Bundle" && k == "total":
			return fmt.Errorf("%s survived although a Check is set", p)
		}
		f := t.fields[k]
		if f == nil {
			continue
		}
		if f.kind == kindComplex && f.typ.name == "HumanName" {
			return fmt.Errorf("%s (a HumanName) survived", p)
		}
		for _, el := range asList(v) {
			m, ok := el.(map[string]any)
			if !ok {
				continue
			}
			var err error
			switch f.kind {
			case kindResource:
				err = checkResource(m)
			case kindComplex:
				err = checkObject(m, f.typ, p)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}
