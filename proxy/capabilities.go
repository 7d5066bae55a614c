package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/policy"
)

// capabilityLimit bounds the upstream CapabilityStatement held for trimming.
const capabilityLimit = 8 << 20

// interactionLetters maps CapabilityStatement type-level interaction codes
// to the SMART permission they need.
var interactionLetters = map[string]byte{
	"read": 'r', "vread": 'r', "history-instance": 'r', "history-type": 's',
	"search-type": 's', "create": 'c', "update": 'u', "patch": 'u', "delete": 'd',
}

// capabilityFilter trims the upstream's CapabilityStatement to what this
// agent may do: resource types no scope reaches disappear, and so do the
// interactions no scope permits. rest.security says SMART-on-FHIR. The
// statement is not patient data, so it is rewritten whole instead of
// streamed.
func capabilityFilter(set policy.ScopeSet, fw *forwarder) func(*http.Response) error {
	return func(resp *http.Response) error {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fhir.Errorf(fhir.ReasonUpstreamUnavailable, "the upstream answered %d to /metadata", resp.StatusCode)
		}
		if json, _ := bodyKind(resp.Header.Get("Content-Type")); !json || resp.Header.Get("Content-Encoding") != "" && resp.Header.Get("Content-Encoding") != "identity" {
			return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the upstream CapabilityStatement is not plain FHIR JSON")
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, capabilityLimit+1))
		if err != nil || len(raw) > capabilityLimit {
			return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the upstream CapabilityStatement could not be read")
		}
		var cs map[string]any
		if err := json.Unmarshal(raw, &cs); err != nil || cs["resourceType"] != "CapabilityStatement" {
			return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the upstream did not answer /metadata with a CapabilityStatement")
		}
		trimCapabilities(cs, set)
		if impl, ok := cs["implementation"].(map[string]any); ok {
			if u, ok := impl["url"].(string); ok {
				impl["url"] = fw.rewriteURL(u)
			}
		}
		out, err := json.Marshal(cs)
		if err != nil {
			return fhir.Wrap(fhir.ReasonInternal, err, "")
		}
		resp.Body = io.NopCloser(bytes.NewReader(out))
		resp.ContentLength = int64(len(out))
		resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
		resp.Header.Set("Content-Type", fhir.ContentTypeJSON)
		return nil
	}
}

func trimCapabilities(cs map[string]any, set policy.ScopeSet) {
	rests, _ := cs["rest"].([]any)
	for _, r := range rests {
		rest, ok := r.(map[string]any)
		if !ok {
			continue
		}
		var kept []any
		resources, _ := rest["resource"].([]any)
		for _, res := range resources {
			rm, ok := res.(map[string]any)
			if !ok {
				continue
			}
			typ, _ := rm["type"].(string)
			var ints []any
			items, _ := rm["interaction"].([]any)
			for _, it := range items {
				im, _ := it.(map[string]any)
				code, _ := im["code"].(string)
				if l, ok := interactionLetters[code]; ok && permitsAny(set, typ, l) {
					ints = append(ints, it)
				}
			}
			if len(ints) == 0 {
				continue
			}
			rm["interaction"] = ints
			kept = append(kept, rm)
		}
		rest["resource"] = kept
		// System-level interactions and operations are decided per
		// request; listing them here would promise what is refused.
		delete(rest, "interaction")
		delete(rest, "operation")
		rest["security"] = map[string]any{
			"service": []any{map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
				"code":   "SMART-on-FHIR",
			}}}},
			"description": "fhirwall: per-agent bearer tokens (SMART Backend Services), SMART v1 and v2 scopes; see .well-known/smart-configuration",
		}
	}
}

func permitsAny(set policy.ScopeSet, typ string, letter byte) bool {
	for _, ctx := range []policy.ScopeContext{policy.ContextSystem, policy.ContextUser, policy.ContextPatient} {
		if set.Permits(ctx, typ, letter) {
			return true
		}
	}
	return false
}
