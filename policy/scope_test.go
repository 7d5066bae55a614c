package policy

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		ctx     ScopeContext
		typ     string
		perms   string
		query   string
		ignored bool
	}{
		{in: "patient/Observation.read", ctx: ContextPatient, typ: "Observation", perms: "rs"},
		{in: "patient/Observation.write", ctx: ContextPatient, typ: "Observation", perms: "cud"},
		{in: "patient/Observation.*", ctx: ContextPatient, typ: "Observation", perms: "cruds"},
		{in: "user/*.*", ctx: ContextUser, typ: "*", perms: "cruds"},
		{in: "user/*.read", ctx: ContextUser, typ: "*", perms: "rs"},
		{in: "system/Claim.rs", ctx: ContextSystem, typ: "Claim", perms: "rs"},
		{in: "system/Claim.cruds", ctx: ContextSystem, typ: "Claim", perms: "cruds"},
		{in: "system/Claim.c", ctx: ContextSystem, typ: "Claim", perms: "c"},
		{in: "system/Claim.ud", ctx: ContextSystem, typ: "Claim", perms: "ud"},
		{in: "system/Claim.s", ctx: ContextSystem, typ: "Claim", perms: "s"},
		{in: "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			ctx: ContextPatient, typ: "Observation", perms: "rs", query: "category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory"},
		{in: "patient/Condition.rs?category=problem-list-item,health-concern&_tag=a|b", ctx: ContextPatient, typ: "Condition", perms: "rs",
			query: "category=problem-list-item,health-concern&_tag=a%7Cb"},
		{in: "user/Observation.rs?status=final", ctx: ContextUser, typ: "Observation", perms: "rs", query: "status=final"},
		{in: "patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5", ctx: ContextPatient, typ: "Observation", perms: "rs", query: "code=http%3A%2F%2Floinc.org%7C1234-5"},
		{in: "openid", ignored: true},
		{in: "fhirUser", ignored: true},
		{in: "launch/patient", ignored: true},
		{in: "launch", ignored: true},
		{in: "offline_access", ignored: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseScope(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if tt.ignored {
				if s.IsSMART() || s.Raw != tt.in {
					t.Errorf("not ignored: %+v", s)
				}
				return
			}
			if s.Context != tt.ctx || s.ResourceType != tt.typ || s.Perms.String() != tt.perms || s.QueryString() != tt.query {
				t.Errorf("got %+v (%s, query %q)", s, s.Perms, s.QueryString())
			}
		})
	}
}

func TestParseScopeRejects(t *testing.T) {
	for _, in := range []string{
		"", "patient", "patient/", "patient/Observation", "patient/Observation.", "admin/Observation.rs",
		"Patient/Observation.rs", "patient/observation.rs", "patient/Foo.rs", "patient/Observation.sr",
		"patient/Observation.rr", "patient/Observation.rx", "patient/Observation.rsx", "patient/Observation.READ",
		"patient/Observation.rs?", "patient/Observation.rs?subject=Patient/1", "patient/Observation.rs?category",
		"patient/Observation.rs?category=", "patient/Observation.rs?category=a&", "patient/Observation.read?category=a",
		"patient/Observation.rs?_has:Observation:patient:code=x", "patient/Observation.rs?code:text=x",
		"patient/Observation.rs?status=a|b", "patient/Observation.rs?category=a,,b", "user/Observation.rs?category=%zz",
		"launch/", "launch/pa tient",
	} {
		if s, err := ParseScope(in); err == nil || !errors.Is(err, ErrScope) {
			t.Errorf("%q accepted: %+v %v", in, s, err)
		}
	}
}

func TestScopeSetPermits(t *testing.T) {
	set := authzScopes(t, "patient/Observation.rs", "patient/Patient.r", "patient/Condition.cu")
	tests := []struct {
		ctx    ScopeContext
		typ    string
		letter byte
		want   bool
	}{
		{ContextPatient, "Observation", 'r', true},
		{ContextPatient, "Observation", 's', true},
		{ContextPatient, "Observation", 'c', false},
		{ContextPatient, "Patient", 's', false},
		{ContextPatient, "Condition", 'u', true},
		{ContextPatient, "Condition", 'd', false},
		{ContextUser, "Observation", 'r', false},
		{ContextPatient, "Encounter", 'r', false},
		{ContextPatient, "Observation", 'x', false},
	}
	for _, tt := range tests {
		if got := set.Permits(tt.ctx, tt.typ, tt.letter); got != tt.want {
			t.Errorf("Permits(%s,%s,%c)=%v", tt.ctx, tt.typ, tt.letter, got)
		}
	}
	wild := authzScopes(t, "user/*.rs")
	if !wild.Permits(ContextUser, "Encounter", 's') || wild.Permits(ContextUser, "Encounter", 'u') {
		t.Error("wildcard")
	}
	if authzScopes(t, "patient/Observation.rs", "user/Patient.rs").ContextMixed() != true {
		t.Error("mixed not detected")
	}
	if authzScopes(t, "user/Observation.rs", "system/Patient.rs").ContextMixed() {
		t.Error("user+system is not a patient mix")
	}
}

func authzScopes(t testing.TB, scopes ...string) ScopeSet {
	t.Helper()
	var ss []Scope
	for _, s := range scopes {
		sc, err := ParseScope(s)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, sc)
	}
	return NewScopeSet(ss...)
}

func TestMapScopes(t *testing.T) {
	scopeMap := map[string][]string{
		"claims.read": {"system/Claim.rs", "system/Coverage.rs"},
		"broken":      {"system/Claim.rz"},
	}
	tests := []struct {
		name     string
		token    []string
		ceilings []string
		want     string // effective set, canonical
		problems []string
		mixed    bool
	}{
		{"mapped and capped", []string{"claims.read", "openid"}, []string{"system/Claim.rs", "system/Patient.rs"},
			"system/Claim.rs", []string{"scope system/Coverage.rs is beyond"}, false},
		{"wildcard token cut to ceiling types", []string{"system/*.cruds"}, []string{"system/Claim.rs", "system/Coverage.r"},
			"system/Claim.rs system/Coverage.r", nil, false},
		{"wildcard ceiling keeps token type", []string{"user/Observation.rs"}, []string{"user/*.r"}, "user/Observation.r", nil, false},
		{"contexts must match", []string{"user/*.rs"}, []string{"system/Claim.rs"}, "", []string{"beyond"}, false},
		{"patient ceiling covers patient tokens", []string{"patient/Observation.read"}, []string{"patient/*.rs"}, "patient/Observation.rs", nil, false},
		{"granular queries AND", []string{"patient/Observation.rs?category=laboratory"}, []string{"patient/Observation.rs?status=final"},
			"patient/Observation.rs?category=laboratory&status=final", nil, false},
		{"granular ceiling narrows plain token", []string{"patient/Observation.rs"}, []string{"patient/Observation.r?category=vital-signs"},
			"patient/Observation.r?category=vital-signs", nil, false},
		{"mixed contexts", []string{"patient/Observation.rs", "system/Claim.rs"}, []string{"system/Claim.rs"},
			"system/Claim.rs", []string{"mixes patient/", "patient/Observation.rs is beyond"}, true},
		{"bad token scope", []string{"system/Claim.sr"}, []string{"system/Claim.rs"}, "", []string{"token scope ignored"}, false},
		{"bad map entry", []string{"broken"}, []string{"system/Claim.rs"}, "", []string{"scope_map[broken]"}, false},
		{"bad ceiling", []string{"system/Claim.rs"}, []string{"system/claim.rs"}, "", []string{"role ceiling", "beyond"}, false},
		{"no letters in common", []string{"system/Claim.c"}, []string{"system/Claim.rs"}, "", []string{"beyond"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, problems := MapScopes(tt.token, scopeMap, tt.ceilings)
			if set.String() != tt.want {
				t.Errorf("effective %q, want %q", set.String(), tt.want)
			}
			if set.ContextMixed() != tt.mixed {
				t.Errorf("mixed %v", set.ContextMixed())
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems %q, want %q", problems, tt.problems)
			}
			for i, p := range tt.problems {
				if !strings.Contains(problems[i], p) {
					t.Errorf("problem %q lacks %q", problems[i], p)
				}
			}
		})
	}
}

func TestPermOrder(t *testing.T) {
	var got []string
	for _, l := range []byte("cruds") {
		got = append(got, PermOf(l).String())
	}
	if !slices.Equal(got, []string{"c", "r", "u", "d", "s"}) || PermOf('x') != 0 {
		t.Errorf("%q", got)
	}
}

func TestEscapeSearchValue(t *testing.T) {
	for in, want := range map[string]string{"a": "a", "a,b": `a\,b`, `a\b`: `a\\b`, "a$b": `a\$b`} {
		if got := escapeSearchValue(in); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
	// A granular value with a comma stays one value upstream.
	s, err := ParseScope("user/Observation.rs?code=x%2Cy")
	if err != nil {
		t.Fatal(err)
	}
	if s.Query[0].Values[0] != "x,y" || s.String() != "user/Observation.rs?code=x%2Cy" {
		t.Errorf("%+v %s", s.Query, s.String())
	}
}

func TestIntersectionOfEqualGranularScopesNarrowsExactly(t *testing.T) {
	const lab = "system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	set, problems := MapScopes([]string{lab}, nil, []string{lab})
	if len(problems) > 0 || set.String() != lab {
		t.Fatalf("token ∩ identical ceiling = %q (%v), want %q", set.String(), problems, lab)
	}
	req, err := fhir.Classify("GET", "/Observation", "_count=3", http.Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Decide(&Subject{AgentID: "a", Scopes: set}, req)
	if !d.Allow || len(d.Narrowing) != 1 || d.Narrowing[0].Name != "category" {
		t.Fatalf("want the search narrowed by category, got %+v", d.Narrowing)
	}
}
