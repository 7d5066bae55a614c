//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// checkBillingPatient asserts the contact-minimum mask on a Patient.
func checkBillingPatient(t *testing.T, p map[string]any, id string) {
	t.Helper()
	if p["resourceType"] != "Patient" || p["id"] != id {
		t.Fatalf("not Patient/%s: %v", id, p)
	}
	if _, ok := p["telecom"]; ok {
		t.Errorf("Patient/%s: telecom not masked: %v", id, p["telecom"])
	}
	if b, _ := json.Marshal(p["identifier"]); strings.Contains(string(b), "us-ssn") || strings.Contains(string(b), "999-00-") {
		t.Errorf("Patient/%s: SSN identifier not masked: %s", id, b)
	}
	if bd, _ := p["birthDate"].(string); len(bd) > 4 {
		t.Errorf("Patient/%s: birthDate %q not generalized to the year", id, bd)
	}
	if !hasRedacted(p) {
		t.Errorf("Patient/%s: no REDACTED security label: %v", id, p["meta"])
	}
	if b, _ := json.Marshal(p["name"]); !strings.Contains(string(b), "family") {
		t.Errorf("Patient/%s: an unmasked element is gone: name = %s", id, b)
	}
}

// hasRedacted reports whether a resource carries meta.security REDACTED.
func hasRedacted(res map[string]any) bool {
	meta, _ := res["meta"].(map[string]any)
	sec, _ := meta["security"].([]any)
	for _, s := range sec {
		if c, _ := s.(map[string]any); c["code"] == "REDACTED" {
			return true
		}
	}
	return false
}

// entries returns a Bundle's entry resources with their search mode.
func entries(b map[string]any) (res []map[string]any, modes []string, fullURLs []string) {
	es, _ := b["entry"].([]any)
	for _, x := range es {
		en, _ := x.(map[string]any)
		r, _ := en["resource"].(map[string]any)
		s, _ := en["search"].(map[string]any)
		m, _ := s["mode"].(string)
		f, _ := en["fullUrl"].(string)
		res, modes, fullURLs = append(res, r), append(modes, m), append(fullURLs, f)
	}
	return res, modes, fullURLs
}

// links returns a Bundle's link URLs by relation.
func links(b map[string]any) map[string]string {
	out := map[string]string{}
	ls, _ := b["link"].([]any)
	for _, x := range ls {
		l, _ := x.(map[string]any)
		rel, _ := l["relation"].(string)
		u, _ := l["url"].(string)
		out[rel] = u
	}
	return out
}

// checkNoUpstream asserts no URL of a Bundle names the upstream and every
// one is on fhirwall's public base.
func checkNoUpstream(t *testing.T, e *env, b map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(b)
	if strings.Contains(string(raw), e.upstreamHP) {
		t.Errorf("the upstream address %s leaks through fhirwall: %.600s", e.upstreamHP, raw)
	}
	for rel, u := range links(b) {
		if !strings.HasPrefix(u, e.gw+"/fhir/") {
			t.Errorf("link %s = %q is not on fhirwall's base %s/fhir", rel, u, e.gw)
		}
	}
	_, _, fulls := entries(b)
	for _, f := range fulls {
		if f != "" && !strings.HasPrefix(f, e.gw+"/fhir/") {
			t.Errorf("fullUrl %q is not on fhirwall's base", f)
		}
	}
}

// checkClaimsMasked asserts every Claim of a Bundle lost its diagnosis and
// carries the REDACTED label, and returns their ids.
func checkClaimsMasked(t *testing.T, b map[string]any) []string {
	t.Helper()
	var ids []string
	res, modes, _ := entries(b)
	for i, r := range res {
		if r["resourceType"] != "Claim" || modes[i] != "match" {
			continue
		}
		ids = append(ids, fmt.Sprint(r["id"]))
		if _, ok := r["diagnosis"]; ok {
			t.Errorf("Claim/%v: diagnosis not masked", r["id"])
		}
		if !hasRedacted(r) {
			t.Errorf("Claim/%v: no REDACTED label", r["id"])
		}
		if _, ok := r["total"]; !ok {
			t.Errorf("Claim/%v: unmasked element total is gone", r["id"])
		}
	}
	return ids
}
