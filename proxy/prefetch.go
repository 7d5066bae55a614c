package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/masking"
	"github.com/fhirwall/fhirwall/policy"
)

// prefetchLimit bounds the resource read before a write.
const prefetchLimit = masking.DefaultMaxResourceBytes

// prefetch reads the current version of the resource a write addresses and
// runs the decision's check on it: an update, patch or delete must not
// touch what the agent could not read (another patient's record, another
// category). It returns the version read, which the write then carries in
// If-Match so nothing changes between the check and the write. A refused
// or missing resource is answered as not-found, so a write cannot probe for
// the existence of records the agent may not see.
func (h *fhirRoute) prefetch(ctx context.Context, req *fhir.Request, check *policy.ResourceCheck) (version string, err error) {
	target := h.fw.upstream.String() + "/" + req.ResourceType + "/" + req.ID
	out, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", fhir.Wrap(fhir.ReasonInternal, err, "")
	}
	out.Header.Set("Accept", "application/fhir+json")
	out.Header.Set("Accept-Encoding", "identity")
	out.Header.Set("X-Request-Id", requestIDFrom(ctx))
	if h.fw.credential != "" {
		out.Header.Set("Authorization", h.fw.credential)
	}
	resp, err := h.fw.rp.Transport.RoundTrip(out)
	if err != nil {
		return "", fhir.Wrap(fhir.ReasonUpstreamUnavailable, err, "the upstream server could not be reached")
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return "", notFound()
	case resp.StatusCode != http.StatusOK:
		return "", fhir.Errorf(fhir.ReasonUpstreamUnavailable, "the upstream answered %d to the pre-write read", resp.StatusCode)
	}
	if json, _ := bodyKind(resp.Header.Get("Content-Type")); !json {
		return "", fhir.Errorf(fhir.ReasonResponseUnmaskable, "the upstream answered the pre-write read with a body that is not FHIR JSON")
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, prefetchLimit+1))
	if err != nil || len(raw) > prefetchLimit {
		return "", fhir.Errorf(fhir.ReasonResponseUnmaskable, "the pre-write read could not be checked")
	}
	v, cerr := check.CheckResource(req.ResourceType, raw, int(masking.TopLevel))
	if cerr != nil {
		return "", cerr
	}
	if v != policy.CheckKeep || gjson.GetBytes(raw, "id").String() != req.ID {
		return "", fhir.Errorf(fhir.ReasonCompartmentViolation, "the write addresses a resource this agent may not read")
	}
	return gjson.GetBytes(raw, "meta.versionId").String(), nil
}

// ifMatch is the If-Match value for a version read by prefetch; an agent's
// own If-Match is kept (the upstream then checks both agree with what is
// stored, since both name the current version or the write fails).
func ifMatch(agent http.Header, version string) string {
	if v := agent.Get("If-Match"); v != "" || version == "" {
		return v
	}
	return `W/"` + strings.ReplaceAll(version, `"`, "") + `"`
}
