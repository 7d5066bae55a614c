package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/guard"
	"github.com/fhirwall/fhirwall/masking"
	"github.com/fhirwall/fhirwall/policy"
)

// runtime is a compiled configuration: everything a request needs, built
// once, never changed. A reload builds a new one.
type runtime struct {
	g      *Gateway
	cfg    *policy.Config
	authn  *policy.Authenticator
	agents map[string]*agentGrant
	router http.Handler
}

// agentGrant is what an agent's roles give it, merged.
type agentGrant struct {
	id         string
	issuer     string // "" when only one issuer is trusted
	roles      []string
	ceilings   []string
	masks      []string
	operations []string
	limits     guard.Limits
	admin      bool
}

func (rt *runtime) close() {
	if rt.authn != nil {
		rt.authn.Close()
	}
}

// resolvePath makes a path in the config relative to the config's folder.
func resolvePath(cfg *policy.Config, p string) string {
	if p == "" || filepath.IsAbs(p) || cfg.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(cfg.File), p)
}

// compile turns a validated configuration into a runtime. Every problem it
// finds is returned as policy.Problems located in the file.
func (g *Gateway) compile(ctx context.Context, cfg *policy.Config) (*runtime, error) {
	rt := &runtime{g: g, cfg: cfg}
	problems := Check(cfg)
	if len(problems) > 0 {
		return nil, problems
	}
	rt.agents = grants(cfg)
	var err error
	rt.authn, err = policy.NewAuthenticator(issuerSpecs(cfg), policy.AuthOptions{
		HTTPClient: g.deps.HTTPClient,
		CacheSize:  g.deps.TokenCacheSize,
		Registered: func(id string) bool { _, ok := rt.agents[id]; return ok },
	})
	if err != nil {
		return nil, policy.Problems{cfg.Problem("auth.issuers", "%v", err)}
	}
	transport := newTransport(cfg.Timeouts)
	r := chi.NewRouter()
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	r.Get("/readyz", rt.serveReady)
	r.Handle("/metrics", g.metricsHandler())
	r.Handle("/audit", http.HandlerFunc(rt.serveAudit))
	r.Handle("/audit/*", http.HandlerFunc(rt.serveAudit))
	r.Handle("/admin/*", http.HandlerFunc(rt.serveAdmin))
	for _, rc := range cfg.Routes {
		fw, err := newForwarder(cfg, rc, transport)
		if err != nil {
			rt.close()
			return nil, policy.Problems{cfg.Problem("routes", "route %s: %v", rc.Name, err)}
		}
		var h http.Handler
		switch rc.Kind {
		case "fhir":
			set, err := compileMasks(cfg, fw.upstream.String(), fw.publicBase)
			if err != nil {
				rt.close()
				return nil, err
			}
			h = &fhirRoute{
				rt: rt, rc: rc, fw: fw,
				classifier: fhir.Classifier{Bases: []string{fw.publicBase, fw.upstream.String()}},
				resp:       &responseFilter{masks: set},
			}
		case "rest":
			rr, err := newRESTRoute(rt, rc, fw)
			if err != nil {
				rt.close()
				return nil, err
			}
			h = rr
		}
		r.Handle(rc.Prefix, h)
		r.Handle(rc.Prefix+"/*", h)
	}
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		rt.refuseUnrouted(w, req)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		rt.refuseUnrouted(w, req)
	})
	rt.router = r
	return rt, nil
}

// grants merges each agent's roles: the union of ceilings, masks and
// operations, and the strictest of each limit.
func grants(cfg *policy.Config) map[string]*agentGrant {
	out := make(map[string]*agentGrant, len(cfg.Agents))
	for _, a := range cfg.Agents {
		ag := &agentGrant{id: a.ID, roles: a.Roles, issuer: a.Issuer}
		var limits []guard.Limits
		for _, name := range a.Roles {
			role := cfg.Roles[name]
			ag.ceilings = appendNew(ag.ceilings, role.Scopes...)
			ag.masks = appendNew(ag.masks, role.Masks...)
			ag.operations = appendNew(ag.operations, role.Operations...)
			ag.admin = ag.admin || role.Admin
			l := role.Limits
			limits = append(limits, guard.Limits{
				RequestsPerSecond:    l.RequestsPerSecond,
				Burst:                l.Burst,
				PatientsPerHour:      l.PatientsPerHour,
				ResourcesPerResponse: l.ResourcesPerResponse,
				BulkCallsPerDay:      l.BulkCallsPerDay,
			})
		}
		ag.limits = guard.Strictest(limits...)
		sort.Strings(ag.masks)
		out[a.ID] = ag
	}
	return out
}

func appendNew(s []string, vs ...string) []string {
	for _, v := range vs {
		found := false
		for _, x := range s {
			if x == v {
				found = true
				break
			}
		}
		if !found {
			s = append(s, v)
		}
	}
	return s
}

func issuerSpecs(cfg *policy.Config) []policy.IssuerSpec {
	specs := make([]policy.IssuerSpec, len(cfg.Auth.Issuers))
	for i, is := range cfg.Auth.Issuers {
		specs[i] = policy.IssuerSpec{
			Issuer:     is.Issuer,
			JWKSURL:    is.JWKSURL,
			JWKSFile:   resolvePath(cfg, is.JWKSFile),
			Audiences:  is.Audiences,
			Algorithms: is.Algorithms,
			AgentClaim: is.AgentClaim,
			Types:      is.TokenTypes,
			ClockSkew:  is.ClockSkew.D(0),
		}
	}
	return specs
}

// compileMasks compiles every mask profile, mapping each bad rule back to
// its line in the configuration.
func compileMasks(cfg *policy.Config, upstreamBase, publicBase string) (*masking.Set, error) {
	profiles := make(map[string][]masking.RuleSpec, len(cfg.Masks))
	for name, rules := range cfg.Masks {
		specs := make([]masking.RuleSpec, len(rules))
		for i, r := range rules {
			specs[i] = masking.RuleSpec{Path: r.Path, Action: r.Action, Replacement: r.Replacement}
		}
		profiles[name] = specs
	}
	opts := masking.Options{
		MaxResourceBytes: cfg.Masking.MaxResourceBytes,
		UpstreamBase:     upstreamBase,
		PublicBase:       publicBase,
	}
	if f := cfg.Masking.HashKeyFile; f != "" {
		key, err := os.ReadFile(resolvePath(cfg, f))
		if err != nil {
			return nil, policy.Problems{cfg.Problem("masking.hash_key_file", "%v", err)}
		}
		if len(key) < 32 {
			return nil, policy.Problems{cfg.Problem("masking.hash_key_file", "the key must hold at least 32 bytes")}
		}
		opts.HashKey = key
	}
	set, err := masking.Compile(profiles, opts)
	if err != nil {
		return nil, maskProblems(cfg, err)
	}
	return set, nil
}

// maskProblems locates masking compile errors in the file.
func maskProblems(cfg *policy.Config, err error) policy.Problems {
	var ps policy.Problems
	var walk func(error)
	walk = func(err error) {
		var re *masking.RuleError
		if errors.As(err, &re) {
			ps = append(ps, cfg.Problem(fmt.Sprintf("masks.%s[%d]", re.Profile, re.Index), "%v", re.Err))
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		ps = append(ps, cfg.Problem("masks", "%v", err))
	}
	walk(err)
	return ps
}

// Check finds the problems of cfg that need other packages to see: scope
// grammar in roles and scope_map, mask paths, REST rule masks. cfg has
// already passed policy's own validation.
func Check(cfg *policy.Config) policy.Problems {
	var ps policy.Problems
	for _, name := range cfg.RoleNames() {
		for i, s := range cfg.Roles[name].Scopes {
			if _, err := policy.ParseScope(s); err != nil {
				ps = append(ps, cfg.Problem(fmt.Sprintf("roles.%s.scopes[%d]", name, i), "%v", err))
			}
		}
	}
	names := make([]string, 0, len(cfg.ScopeMap))
	for n := range cfg.ScopeMap {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.Contains(n, "/") {
			ps = append(ps, cfg.Problem("scope_map."+n, "a mapped name is an admin-defined name, not a SMART scope"))
		}
		for i, s := range cfg.ScopeMap[n] {
			if _, err := policy.ParseScope(s); err != nil {
				ps = append(ps, cfg.Problem(fmt.Sprintf("scope_map.%s[%d]", n, i), "%v", err))
			}
		}
	}
	if _, err := compileMasks(cfg, "", ""); err != nil {
		var more policy.Problems
		if errors.As(err, &more) {
			ps = append(ps, more...)
		}
	}
	for i, rc := range cfg.Routes {
		for j, rule := range rc.Rules {
			if len(rule.Masks) > 0 {
				if _, err := masking.CompileJSONPaths(rule.Masks, masking.Options{}); err != nil {
					ps = append(ps, cfg.Problem(fmt.Sprintf("routes[%d].rules[%d].masks", i, j), "%v", err))
				}
			}
		}
		if ua := rc.UpstreamAuth; ua != nil {
			if _, err := readSecret(resolvePath(cfg, ua.BearerTokenFile), ua.BearerTokenEnv); err != nil {
				ps = append(ps, cfg.Problem(fmt.Sprintf("routes[%d].upstream_auth", i), "%v", err))
			}
		}
	}
	for i, is := range cfg.Auth.Issuers {
		if is.JWKSFile != "" {
			if _, err := os.Stat(resolvePath(cfg, is.JWKSFile)); err != nil {
				ps = append(ps, cfg.Problem(fmt.Sprintf("auth.issuers[%d].jwks_file", i), "%v", err))
			}
		}
	}
	return ps
}
