package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/masking"
	"github.com/fhirwall/fhirwall/policy"
)

// restRoute serves a JSON/REST route: a request passes only if a rule
// matches its method and path and the agent holds one of the rule's scopes.
// No rule, no access.
type restRoute struct {
	rt    *runtime
	rc    policy.RouteConfig
	fw    *forwarder
	rules []restRule
}

type restRule struct {
	method string
	segs   []string // "{name}" matches one non-empty segment
	scopes []string
	masker *masking.JSONMasker
	match  string
}

func newRESTRoute(rt *runtime, rc policy.RouteConfig, fw *forwarder) (*restRoute, error) {
	rr := &restRoute{rt: rt, rc: rc, fw: fw}
	for i, rule := range rc.Rules {
		method, pattern, err := policy.ParseRESTMatch(rule.Match)
		if err != nil {
			return nil, err
		}
		r := restRule{method: method, segs: strings.Split(strings.Trim(pattern, "/"), "/"), scopes: rule.Scopes, match: rule.Match}
		if len(rule.Masks) > 0 {
			m, err := masking.CompileJSONPaths(rule.Masks, masking.Options{MaxResourceBytes: rt.cfg.Masking.MaxResourceBytes})
			if err != nil {
				return nil, policy.Problems{rt.cfg.Problem(fmt.Sprintf("routes.%s.rules[%d].masks", rc.Name, i), "%v", err)}
			}
			r.masker = m
		}
		rr.rules = append(rr.rules, r)
	}
	return rr, nil
}

// restPathOK refuses the path tricks that make a gateway and an upstream
// disagree on what was asked for.
func restPathOK(raw string) bool {
	l := strings.ToLower(raw)
	if strings.Contains(l, "%2f") || strings.Contains(l, "%5c") || strings.Contains(l, "%2e") ||
		strings.Contains(l, "%25") || strings.Contains(raw, "\\") || strings.Contains(raw, ";") ||
		strings.Contains(raw, "//") {
		return false
	}
	for _, seg := range strings.Split(raw, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

func (rr *restRoute) find(method, rest string) *restRule {
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	for i := range rr.rules {
		r := &rr.rules[i]
		if r.method != method && !(r.method == http.MethodGet && method == http.MethodHead) {
			continue
		}
		if len(r.segs) != len(segs) {
			continue
		}
		ok := true
		for j, s := range r.segs {
			if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
				if segs[j] == "" {
					ok = false
					break
				}
				continue
			}
			if s != segs[j] {
				ok = false
				break
			}
		}
		if ok {
			return r
		}
	}
	return nil
}

func (rr *restRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := rr.rt.begin(w, r, rr.rc.Name)
	if err := c.authenticate(); err != nil {
		c.refuse(err)
		return
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), rr.rc.Prefix)
	if rest == "" {
		rest = "/"
	}
	if !restPathOK(rest) {
		c.refuse(fhir.Errorf(fhir.ReasonPathInvalid, "the path holds an encoded separator, a dot segment or a parameter"))
		return
	}
	rule := rr.find(r.Method, rest)
	var err error
	switch {
	case rule == nil:
		err = fhir.Errorf(fhir.ReasonRouteDenied, "no rule of route %s matches %s", rr.rc.Name, r.Method)
	default:
		err = rr.rt.restAllowed(c, rule.scopes)
	}
	if err != nil {
		if rr.rc.Enforced() {
			c.refuse(err)
			return
		}
		c.acc.Decision = audit.DecisionShadowDeny
		c.acc.Reason = string(fhir.ReasonOf(err))
	}
	body, err := readBody(r, rr.rc.MaxRequestBytes)
	if err != nil {
		c.refuse(err)
		return
	}
	x := &exchange{upstreamPath: rest, rawQuery: r.URL.RawQuery, body: body}
	if rule != nil && rule.masker != nil {
		x.filter = func(resp *http.Response) error {
			err := maskREST(rule.masker, resp)
			if err != nil {
				x.filterErr = err
			}
			return err
		}
	}
	c.forward(rr.fw, x)
}

// maxRESTBody bounds a REST body read for masking; the masker's own cap
// (masking.max_resource_bytes) is usually smaller.
const maxRESTBody = 64 << 20

// maskREST masks a JSON REST response whole (REST bodies are single
// documents, bounded by the masker's size cap). A body that is not JSON
// cannot be masked and is refused.
func maskREST(m *masking.JSONMasker, resp *http.Response) error {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified || resp.ContentLength == 0 {
		return nil
	}
	if json, _ := bodyKind(resp.Header.Get("Content-Type")); !json {
		return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the upstream answered with a body that is not JSON")
	}
	src, err := masking.DecodeBody(resp.Header.Get("Content-Encoding"), resp.Body)
	if err != nil {
		return err
	}
	// Mask refuses a body over its cap; read one byte past any sane cap
	// so an endless body cannot exhaust memory first.
	raw, err := io.ReadAll(io.LimitReader(src, maxRESTBody+1))
	if err != nil {
		return fhir.Wrap(fhir.ReasonUpstreamUnavailable, err, "the upstream body could not be read")
	}
	if int64(len(raw)) > maxRESTBody {
		return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the upstream body exceeds %d bytes", maxRESTBody)
	}
	out, _, err := m.Mask(raw)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Del("Content-Encoding")
	return nil
}
