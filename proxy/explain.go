package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/policy"
)

// Explain says what the gateway would decide for method and rawURL carried
// with token under cfg, and why: the agent, the effective scopes, the
// decision with its reason code, the narrowing and the masks. It calls no
// upstream and touches no shared state, so revocations and rate limits are
// not part of the answer. A token that fails authentication is explained
// as that refusal.
func Explain(ctx context.Context, cfg *policy.Config, token, method, rawURL string) (string, error) {
	agents := grants(cfg)
	authn, err := policy.NewAuthenticator(issuerSpecs(cfg), policy.AuthOptions{
		CacheSize:  -1,
		Registered: func(id string) bool { _, ok := agents[id]; return ok },
	})
	if err != nil {
		return "", err
	}
	defer authn.Close()
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	h := http.Header{}
	h.Set("Authorization", "Bearer "+strings.TrimSpace(token))
	p, err := authn.Authenticate(ctx, h)
	if err != nil {
		r := fhir.ReasonOf(err)
		line("decision: DENY (%s, HTTP %d): authentication failed", r, r.Status())
		return b.String(), nil
	}
	g := agents[p.AgentID]
	line("agent: %s (roles: %s)", p.AgentID, strings.Join(g.roles, ", "))
	if p.Patient != "" {
		line("token patient: %s", p.Patient)
	}
	set, problems := policy.MapScopes(p.Scopes, cfg.ScopeMap, g.ceilings)
	line("token scopes: %s", strings.Join(p.Scopes, " "))
	line("effective scopes (token mapped, within role ceilings): %s", set.String())
	for _, pr := range problems {
		line("  note: %s", pr)
	}

	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", rawURL, err)
	}
	path := u.EscapedPath()
	var rc *policy.RouteConfig
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if path == r.Prefix || strings.HasPrefix(path, r.Prefix+"/") {
			rc = r
		}
	}
	if rc == nil {
		line("decision: DENY (%s): no route serves %s", fhir.ReasonNotFound, path)
		return b.String(), nil
	}
	line("route: %s (%s, upstream %s)%s", rc.Name, rc.Kind, rc.Upstream, map[bool]string{true: "", false: " [shadow mode: decisions are audited, not enforced]"}[rc.Enforced()])
	rest := strings.TrimPrefix(path, rc.Prefix)
	method = strings.ToUpper(method)
	if rc.Kind == "rest" {
		explainREST(&b, cfg, *rc, set, method, rest)
		return b.String(), nil
	}
	req, err := fhir.Classifier{}.Classify(method, rest, u.RawQuery, http.Header{}, nil)
	if err != nil {
		r := fhir.ReasonOf(err)
		line("decision: DENY (%s, HTTP %d): %s", r, r.Status(), err)
		return b.String(), nil
	}
	d := policy.Decide(&policy.Subject{AgentID: p.AgentID, Scopes: set, Patient: p.Patient, Operations: g.operations}, req)
	b.WriteString(policy.Explain(d, req))
	if d.Allow {
		if len(d.Narrowing) > 0 {
			line("forwarded query: %s", d.NarrowQuery(u.RawQuery))
		}
		explainMasks(&b, cfg, g.masks)
	}
	return b.String(), nil
}

func explainREST(b *strings.Builder, cfg *policy.Config, rc policy.RouteConfig, set policy.ScopeSet, method, rest string) {
	rr := &restRoute{rc: rc}
	for _, rule := range rc.Rules {
		m, pattern, _ := policy.ParseRESTMatch(rule.Match)
		rr.rules = append(rr.rules, restRule{method: m, segs: strings.Split(strings.Trim(pattern, "/"), "/"), scopes: rule.Scopes, match: rule.Match})
	}
	if !restPathOK(rest) {
		fmt.Fprintf(b, "decision: DENY (%s): the path holds an encoded separator, a dot segment or a parameter\n", fhir.ReasonPathInvalid)
		return
	}
	rule := rr.find(method, rest)
	if rule == nil {
		fmt.Fprintf(b, "decision: DENY (%s): no rule matches %s %s\n", fhir.ReasonRouteDenied, method, rest)
		return
	}
	fmt.Fprintf(b, "rule: %s (needs one of: %s)\n", rule.match, strings.Join(rule.scopes, ", "))
	rt := &runtime{cfg: cfg}
	if err := rt.restAllowedBy(set, rule.scopes); err != nil {
		fmt.Fprintf(b, "decision: DENY (%s): %s\n", fhir.ReasonOf(err), err.(*fhir.Error).Detail)
		return
	}
	b.WriteString("decision: ALLOW\n")
	for _, r := range rc.Rules {
		if r.Match == rule.match && len(r.Masks) > 0 {
			fmt.Fprintf(b, "masks (JSON paths removed): %s\n", strings.Join(r.Masks, ", "))
		}
	}
}

func explainMasks(b *strings.Builder, cfg *policy.Config, profiles []string) {
	if len(profiles) == 0 {
		b.WriteString("masks: none\n")
		return
	}
	for _, name := range profiles {
		var paths []string
		for _, r := range cfg.Masks[name] {
			s := r.Path
			if r.Action != "" && r.Action != "remove" {
				s += " (" + r.Action + ")"
			}
			paths = append(paths, s)
		}
		fmt.Fprintf(b, "mask %s: %s\n", name, strings.Join(paths, "; "))
	}
}
