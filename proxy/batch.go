package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/masking"
	"github.com/fhirwall/fhirwall/policy"
)

// batchResponseLimit bounds a batch response held for merging.
const batchResponseLimit = 16 << 20

// bundlePlan is how a batch or transaction is forwarded: which entries of
// the agent's Bundle go upstream (narrowed, with If-Match where a prefetch
// read the version), and the answer for each refused batch entry.
type bundlePlan struct {
	body      []byte  // the Bundle to forward
	forwarded []int   // original index of each forwarded entry, in order
	refused   []error // per original entry: its refusal, or nil
	decisions []policy.Decision
}

// planBundle prepares a batch or transaction. A transaction with a refused
// entry has already been refused whole by Decide; here a transaction
// entry whose prefetch fails refuses it whole too. A refused batch entry
// is never forwarded and gets its own answer in the response.
func (h *fhirRoute) planBundle(ctx context.Context, req *fhir.Request, d policy.Decision) (*bundlePlan, error) {
	var bundle map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &bundle); err != nil {
		return nil, fhir.Wrap(fhir.ReasonRequestInvalid, err, "the Bundle cannot be read")
	}
	var entries []map[string]any
	if raw, ok := bundle["entry"]; ok {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, fhir.Wrap(fhir.ReasonRequestInvalid, err, "Bundle.entry cannot be read")
		}
	}
	if len(entries) != len(d.EntryDecisions) {
		return nil, fhir.Errorf(fhir.ReasonRequestInvalid, "the Bundle's entries do not match their classification")
	}
	transaction := req.Interaction == fhir.InteractionTransaction
	plan := &bundlePlan{refused: make([]error, len(entries)), decisions: d.EntryDecisions}
	var out []any
	for i, e := range entries {
		ed := d.EntryDecisions[i]
		if !ed.Allow {
			plan.refused[i] = ed.Err()
			continue
		}
		request, _ := e["request"].(map[string]any)
		if u, ok := request["url"].(string); ok && len(ed.Narrowing) > 0 {
			request["url"] = ed.NarrowURL(u)
		}
		if ed.Prefetch && ed.Check != nil && i < len(req.Entries) && req.Entries[i].Request != nil {
			version, err := h.prefetch(ctx, req.Entries[i].Request, ed.Check)
			if err != nil {
				if transaction {
					return nil, &refusal{answer: fmt.Errorf("transaction entry %d: %w", i, ed.CheckRefusal()), reason: fhir.ReasonOf(err)}
				}
				plan.refused[i] = ed.CheckRefusal()
				continue
			}
			if _, set := request["ifMatch"]; !set && version != "" {
				request["ifMatch"] = ifMatch(http.Header{}, version)
			}
		}
		plan.forwarded = append(plan.forwarded, i)
		out = append(out, e)
	}
	if len(plan.forwarded) == 0 {
		return plan, nil
	}
	ob, err := json.Marshal(out)
	if err != nil {
		return nil, fhir.Wrap(fhir.ReasonInternal, err, "")
	}
	bundle["entry"] = ob
	if plan.body, err = json.Marshal(bundle); err != nil {
		return nil, fhir.Wrap(fhir.ReasonInternal, err, "")
	}
	return plan, nil
}

// entryAnswer is a batch-response entry for a refused or withheld entry.
func entryAnswer(err error) map[string]any {
	r := fhir.ReasonOf(err)
	detail := ""
	if fe, ok := err.(*fhir.Error); ok {
		detail = fe.Detail
	}
	return map[string]any{"response": map[string]any{
		"status":  strconv.Itoa(r.Status()) + " " + http.StatusText(r.Status()),
		"outcome": fhir.Outcome(r, detail),
	}}
}

// mergeBatchResponse puts the upstream's answers and the refused entries
// back in the agent's order, and withholds (as 404, so a batch cannot
// probe for existence) every returned resource its own entry's check
// refuses. The merged Bundle then goes through the usual filter and masks.
func (p *bundlePlan) mergeBatchResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		return nil // an upstream refusal of the whole batch passes as it is
	}
	if json, _ := bodyKind(resp.Header.Get("Content-Type")); !json {
		return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the upstream answered the batch with a body that is not FHIR JSON")
	}
	src, err := masking.DecodeBody(resp.Header.Get("Content-Encoding"), resp.Body)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(src, batchResponseLimit+1))
	resp.Body.Close()
	if err != nil || len(raw) > batchResponseLimit {
		return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the batch response exceeds %d bytes", batchResponseLimit)
	}
	var bundle map[string]json.RawMessage
	var entries []map[string]json.RawMessage
	if err = json.Unmarshal(raw, &bundle); err == nil {
		err = json.Unmarshal(bundle["entry"], &entries)
	}
	if err != nil || len(entries) != len(p.forwarded) {
		return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the batch response does not answer each forwarded entry")
	}
	merged := make([]any, len(p.refused))
	for i, e := range p.refused {
		if e != nil {
			merged[i] = entryAnswer(e)
		}
	}
	for k, i := range p.forwarded {
		entry := entries[k]
		if res, ok := entry["resource"]; ok {
			ed := p.decisions[i]
			if ed.Check == nil {
				merged[i] = entryAnswer(ed.CheckRefusal())
				continue
			}
			var head struct{ ResourceType string }
			_ = json.Unmarshal(res, &head)
			v, err := ed.Check.CheckResource(head.ResourceType, res, int(masking.BundleEntry))
			if err != nil || v != policy.CheckKeep {
				merged[i] = entryAnswer(fhir.Errorf(fhir.ReasonNotFound, ""))
				continue
			}
		}
		merged[i] = entry
	}
	me, err := json.Marshal(merged)
	if err != nil {
		return fhir.Wrap(fhir.ReasonInternal, err, "")
	}
	bundle["entry"] = me
	out, err := json.Marshal(bundle)
	if err != nil {
		return fhir.Wrap(fhir.ReasonInternal, err, "")
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Del("Content-Encoding")
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}
