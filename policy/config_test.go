package policy

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load("../deploy/examples/fhirwall.yaml")
	if err != nil {
		t.Fatalf("the shipped example must load:\n%v", err)
	}
	if len(cfg.Agents) == 0 || len(cfg.Routes) != 2 || cfg.Routes[1].Kind != "rest" {
		t.Fatalf("example decoded wrongly: %+v", cfg)
	}
	if got := cfg.Masks["contact-minimum"][2]; got.Path != "Patient.birthDate" || got.Action != "generalize" {
		t.Fatalf("mask rule mapping form decoded as %+v", got)
	}
	if !strings.HasPrefix(cfg.Version, "sha256:") {
		t.Fatalf("version %q", cfg.Version)
	}
}

// TestBadConfigListsEveryProblem checks that one load reports every
// problem, each with the file, the line and the reason.
func TestBadConfigListsEveryProblem(t *testing.T) {
	const file = "testdata/config/bad.yaml"
	_, err := Load(file)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	want := []struct {
		line int
		text string
	}{
		{3, "field colour not found"},
		{7, "plain http is accepted only on loopback"},
		{9, "HS256 is a shared-secret algorithm"},
		{9, `"none" is never accepted`},
		{12, `unknown role "ghost"`},
		{16, `unknown mask profile "no-such-mask"`},
		{20, `unknown action "shred"`},
		{23, "must look like /fhir"},
		{25, "not an absolute http(s) base URL"},
		{27, "neither sqlite:// nor postgres://"},
	}
	for _, w := range want {
		found := false
		for _, p := range ps {
			if p.File == file && p.Line == w.line && strings.Contains(p.Msg, w.text) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing problem at %s:%d containing %q; got:\n%v", file, w.line, w.text, ps)
		}
	}
}

func TestParseRefusesEmptyAndBrokenYAML(t *testing.T) {
	for name, text := range map[string]string{
		"empty":   "",
		"broken":  "listen: [unclosed\n",
		"tabs":    "listen:\t\"x\"\n\tpublic_base_url: y\n",
		"wrongty": "agents: 7\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("mem.yaml", []byte(text))
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("want problems, got %v", err)
			}
			for _, p := range ps {
				if p.File != "mem.yaml" {
					t.Fatalf("problem without file: %v", p)
				}
			}
		})
	}
}

func TestLineLocatesNestedKeys(t *testing.T) {
	cfg, err := Load("../deploy/examples/fhirwall.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("../deploy/examples/fhirwall.yaml")
	lines := strings.Split(string(data), "\n")
	for _, tc := range []struct{ path, want string }{
		{"roles.billing.masks", "masks: [hide-diagnosis"},
		{"masks.contact-minimum[2]", "- path: Patient.birthDate"},
		{"routes[1].rules[0].match", "match: GET /claims/{id}"},
		{"audit.store", "store: sqlite:"},
		{"roles.nosuchrole.scopes", "roles:"},
	} {
		n := cfg.Line(tc.path)
		if n < 1 || n > len(lines) || !strings.Contains(lines[n-1], tc.want) {
			t.Errorf("Line(%q) = %d, want the line holding %q", tc.path, n, tc.want)
		}
	}
}

func TestSeveralIssuersNeedAgentsBoundToOne(t *testing.T) {
	cfg := `public_base_url: http://gw
auth:
  issuers:
    - {issuer: https://a, jwks_file: a.json, audiences: [x], algorithms: [ES256]}
    - {issuer: https://b, jwks_file: b.json, audiences: [x], algorithms: [ES256]}
agents:
  - {id: unbound, roles: [r]}
  - {id: bound, roles: [r], issuer: https://b}
  - {id: stray, roles: [r], issuer: https://c}
roles:
  r: {scopes: [system/Patient.rs]}
routes:
  - {name: ehr, prefix: /fhir, kind: fhir, upstream: "http://127.0.0.1:9/fhir"}
audit: {store: "sqlite://a.db"}
`
	_, err := Parse("two.yaml", []byte(cfg))
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if !strings.Contains(msg, "two.yaml:7: agents[0].issuer: several issuers are trusted") ||
		!strings.Contains(msg, `two.yaml:9: agents[2].issuer: issuer "https://c" is not among auth.issuers`) ||
		strings.Contains(msg, "agents[1]") {
		t.Fatalf("got:\n%s", msg)
	}
}
