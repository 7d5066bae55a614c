package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/policy"
)

const defaultMaxRequestBytes = 10 << 20

// fhirRoute serves one FHIR route: every request is authenticated,
// classified, authorized, audited and forwarded; every response is
// filtered and masked on its way back.
type fhirRoute struct {
	rt         *runtime
	rc         policy.RouteConfig
	fw         *forwarder
	classifier fhir.Classifier
	resp       *responseFilter
}

func (h *fhirRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), h.rc.Prefix)
	if rest == "/.well-known/smart-configuration" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		h.rt.serveSMARTConfiguration(w, r, h.rc)
		return
	}
	c := h.rt.begin(w, r, h.rc.Name)
	if err := c.authenticate(); err != nil {
		c.refuse(err)
		return
	}
	if err := acceptableFormat(r); err != nil {
		c.refuse(err)
		return
	}
	body, err := readBody(r, h.rc.MaxRequestBytes)
	if err != nil {
		c.refuse(err)
		return
	}
	req, err := h.classifier.Classify(r.Method, rest, r.URL.RawQuery, r.Header, body)
	if err != nil {
		c.refuse(err)
		return
	}
	c.acc.Interaction = req.Interaction.AuditCode()
	c.acc.ResourceType = req.ResourceType
	c.acc.ResourceID = req.ID
	if req.ResourceType == "" && req.CompartmentType != "" {
		c.acc.ResourceType = req.CompartmentType
	}
	az, err := h.rt.authorize(c, req)
	if err != nil {
		if h.rc.Enforced() {
			c.refuseAudited(answerOf(err), auditReason(err))
			return
		}
		// Shadow mode: the decision is recorded, not enforced.
		c.acc.Decision = audit.DecisionShadowDeny
		c.acc.Reason = string(auditReason(err))
		az = shadowAuthorization(c.grant.masks)
	}
	x := &exchange{upstreamPath: rest, rawQuery: az.rawQuery(r.URL.RawQuery), body: az.body(body)}
	// Nothing goes upstream, not even a write's prefetch, before the
	// intent record is durable.
	pending, ok := c.intent()
	if !ok {
		return
	}
	if az.prefetch != nil {
		version, err := h.prefetch(r.Context(), req, az.prefetch)
		if err != nil {
			switch reason := fhir.ReasonOf(err); reason {
			case fhir.ReasonCompartmentViolation, fhir.ReasonNotFound:
				c.refusePending(pending, notFound(), reason)
			default:
				c.refusePending(pending, err, reason)
			}
			return
		}
		x.ifMatch = ifMatch(r.Header, version)
	}
	var plan *bundlePlan
	if (req.Interaction == fhir.InteractionBatch || req.Interaction == fhir.InteractionTransaction) && c.acc.Decision == audit.DecisionAllow {
		if plan, err = h.planBundle(r.Context(), req, az.decision); err != nil {
			c.refusePending(pending, answerOf(err), auditReason(err))
			return
		}
		if len(plan.forwarded) == 0 {
			h.answerRefusedBatch(c, pending, plan)
			return
		}
		x.body = plan.body
	}
	switch {
	case req.Interaction == fhir.InteractionCapabilities:
		x.filter = capabilityFilter(c.effectiveScopes(), h.fw)
	default:
		h.resp.attach(x, c, az)
	}
	if plan != nil && req.Interaction == fhir.InteractionBatch {
		inner := x.filter
		x.filter = func(resp *http.Response) error {
			if err := plan.mergeBatchResponse(resp); err != nil {
				x.filterErr = err
				return err
			}
			return inner(resp)
		}
	}
	c.forwardPending(pending, h.fw, x)
}

// acceptableFormat refuses requests that ask for anything but JSON: only
// JSON can be filtered and masked, so XML and RDF are never served.
func acceptableFormat(r *http.Request) error {
	for _, f := range r.URL.Query()["_format"] {
		switch strings.ToLower(strings.TrimSpace(f)) {
		case "json", "application/json", "application/fhir+json", "application/json+fhir":
		default:
			return fhir.Errorf(fhir.ReasonNotAcceptable, "_format %q is not served: fhirwall serves JSON only", f)
		}
	}
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return nil
	}
	for _, a := range accept {
		for _, part := range strings.Split(a, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
				continue
			}
			switch mt {
			case "*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir",
				"application/ndjson", "application/fhir+ndjson", "application/x-ndjson":
				return nil
			}
		}
	}
	return fhir.Errorf(fhir.ReasonNotAcceptable, "the Accept header asks for no JSON type: fhirwall serves JSON only")
}

// readBody reads a request body whole, bounded: it must be classified and
// authorized before any of it is forwarded.
func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if max <= 0 {
		max = defaultMaxRequestBytes
	}
	if r.ContentLength > max {
		return nil, fhir.Errorf(fhir.ReasonRequestInvalid, "the request body exceeds %d bytes", max)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, fhir.Wrap(fhir.ReasonRequestInvalid, err, "the request body could not be read")
	}
	if int64(len(b)) > max {
		return nil, fhir.Errorf(fhir.ReasonRequestInvalid, "the request body exceeds %d bytes", max)
	}
	if len(b) == 0 {
		return nil, nil
	}
	return b, nil
}

// auditReason is the reason to record for an authorization error.
func auditReason(err error) fhir.Reason {
	var rf *refusal
	if errors.As(err, &rf) {
		return rf.reason
	}
	return fhir.ReasonOf(err)
}

// answerRefusedBatch answers a batch whose every entry was refused: a
// batch-response with each entry's own refusal, nothing forwarded.
func (h *fhirRoute) answerRefusedBatch(c *call, pending *audit.Pending, plan *bundlePlan) {
	entries := make([]any, len(plan.refused))
	for i, e := range plan.refused {
		entries[i] = entryAnswer(e)
	}
	body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "batch-response", "entry": entries})
	c.acc.Decision = audit.DecisionDeny
	c.acc.Reason = string(fhir.ReasonOf(plan.refused[0]))
	c.w.Header().Set("Content-Type", fhir.ContentTypeJSON)
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(body)
	c.complete(pending, &exchange{}, false)
}

// answerOf is the error to answer the agent with for an authorization
// error (a refusal may answer differently from what it audits).
func answerOf(err error) error {
	var rf *refusal
	if errors.As(err, &rf) {
		return rf.answer
	}
	return err
}
