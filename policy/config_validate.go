package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

// contentVersion names a configuration by the hash of its bytes, so an
// AuditEvent can say exactly which policy was in force.
func contentVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
	prefixRE = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
)

// reservedPrefixes are paths the gateway serves itself.
var reservedPrefixes = []string{"/audit", "/admin", "/healthz", "/readyz", "/metrics", "/ui", "/.well-known"}

var hmacAlgs = map[string]bool{"HS256": true, "HS384": true, "HS512": true}

var knownAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}

// validate checks everything that can be checked without other packages:
// required keys, references between sections, URLs and names. Scope grammar
// and mask paths are checked where they are compiled (see Validate hooks).
func (c *Config) validate() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) { ps = append(ps, c.Problem(path, format, args...)) }

	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			add("listen", "%q is not host:port", c.Listen)
		}
	}
	if c.PublicBaseURL == "" {
		add("public_base_url", "is required: the gateway rewrites upstream URLs to it")
	} else if u, err := url.Parse(c.PublicBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("public_base_url", "%q is not an absolute http(s) URL", c.PublicBaseURL)
	}

	if len(c.Auth.Issuers) == 0 {
		add("auth.issuers", "at least one trusted issuer is required")
	}
	seenIss := map[string]bool{}
	for i, is := range c.Auth.Issuers {
		p := fmt.Sprintf("auth.issuers[%d]", i)
		if is.Issuer == "" {
			add(p, "issuer is required")
		} else if seenIss[is.Issuer] {
			add(p+".issuer", "issuer %q is listed twice", is.Issuer)
		}
		seenIss[is.Issuer] = true
		switch {
		case is.JWKSURL == "" && is.JWKSFile == "":
			add(p, "one of jwks_url and jwks_file is required")
		case is.JWKSURL != "" && is.JWKSFile != "":
			add(p, "set jwks_url or jwks_file, not both")
		case is.JWKSURL != "":
			if err := checkFetchURL(is.JWKSURL); err != nil {
				add(p+".jwks_url", "%v", err)
			}
		}
		if len(is.Audiences) == 0 {
			add(p+".audiences", "at least one audience is required")
		}
		if len(is.Algorithms) == 0 {
			add(p+".algorithms", "list the accepted algorithms, e.g. [RS256, ES256]")
		}
		for j, a := range is.Algorithms {
			switch {
			case strings.EqualFold(a, "none"):
				add(fmt.Sprintf("%s.algorithms[%d]", p, j), "\"none\" is never accepted")
			case hmacAlgs[a]:
				add(fmt.Sprintf("%s.algorithms[%d]", p, j), "%s is a shared-secret algorithm; only public-key algorithms are accepted", a)
			case !knownAlgs[a]:
				add(fmt.Sprintf("%s.algorithms[%d]", p, j), "unknown algorithm %q", a)
			}
		}
		if time.Duration(is.ClockSkew) > 5*time.Minute {
			add(p+".clock_skew", "at most 5m")
		}
	}

	roleNames := map[string]bool{}
	for name, r := range c.Roles {
		roleNames[name] = true
		p := "roles." + name
		if !nameRE.MatchString(name) {
			add(p, "role name %q is not a plain name", name)
		}
		for j, m := range r.Masks {
			if _, ok := c.Masks[m]; !ok {
				add(fmt.Sprintf("%s.masks[%d]", p, j), "unknown mask profile %q", m)
			}
		}
		for j, op := range r.Operations {
			if !strings.HasPrefix(op, "$") || len(op) < 2 {
				add(fmt.Sprintf("%s.operations[%d]", p, j), "an operation is written with its $, e.g. $everything")
			}
		}
		l := r.Limits
		if l.RequestsPerSecond < 0 || l.Burst < 0 || l.PatientsPerHour < 0 || l.ResourcesPerResponse < 0 || l.BulkCallsPerDay < 0 {
			add(p+".limits", "limits cannot be negative")
		}
		if l.Burst > 0 && l.RequestsPerSecond == 0 {
			add(p+".limits.burst", "burst needs requests_per_second")
		}
	}

	if len(c.Agents) == 0 {
		add("agents", "no agents are registered: every request would be refused")
	}
	seenAgent := map[string]bool{}
	for i, a := range c.Agents {
		p := fmt.Sprintf("agents[%d]", i)
		if !nameRE.MatchString(a.ID) {
			add(p+".id", "agent id %q is empty or not a plain name", a.ID)
		} else if seenAgent[a.ID] {
			add(p+".id", "agent %q is registered twice", a.ID)
		}
		seenAgent[a.ID] = true
		if len(a.Roles) == 0 {
			add(p+".roles", "an agent needs at least one role")
		}
		switch {
		case a.Issuer != "" && !seenIss[a.Issuer]:
			add(p+".issuer", "issuer %q is not among auth.issuers", a.Issuer)
		case a.Issuer == "" && len(c.Auth.Issuers) > 1:
			add(p+".issuer", "several issuers are trusted: name the one that speaks for this agent")
		}
		for j, r := range a.Roles {
			if !roleNames[r] {
				add(fmt.Sprintf("%s.roles[%d]", p, j), "unknown role %q", r)
			}
		}
	}

	for name, rules := range c.Masks {
		if len(rules) == 0 {
			add("masks."+name, "a mask profile needs at least one path")
		}
		for j, r := range rules {
			p := fmt.Sprintf("masks.%s[%d]", name, j)
			if strings.TrimSpace(r.Path) == "" {
				add(p, "path is required")
			}
			switch r.Action {
			case "", "remove", "redact", "hash", "generalize":
			default:
				add(p+".action", "unknown action %q (remove, redact, hash or generalize)", r.Action)
			}
			if r.Action == "hash" && c.Masking.HashKeyFile == "" {
				add(p+".action", "the hash action needs masking.hash_key_file")
			}
		}
	}

	if len(c.Routes) == 0 {
		add("routes", "at least one route is required")
	}
	seenRoute, seenPrefix := map[string]bool{}, map[string]bool{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if !nameRE.MatchString(r.Name) {
			add(p+".name", "route name %q is empty or not a plain name", r.Name)
		} else if seenRoute[r.Name] {
			add(p+".name", "route %q is defined twice", r.Name)
		}
		seenRoute[r.Name] = true
		if !prefixRE.MatchString(r.Prefix) {
			add(p+".prefix", "prefix %q must look like /fhir (no trailing slash)", r.Prefix)
		} else {
			for _, rp := range reservedPrefixes {
				if r.Prefix == rp || strings.HasPrefix(r.Prefix, rp+"/") {
					add(p+".prefix", "%s is served by fhirwall itself", rp)
				}
			}
			for other := range seenPrefix {
				if r.Prefix == other || strings.HasPrefix(r.Prefix, other+"/") || strings.HasPrefix(other, r.Prefix+"/") {
					add(p+".prefix", "prefix %q overlaps %q", r.Prefix, other)
				}
			}
			seenPrefix[r.Prefix] = true
		}
		switch r.Kind {
		case "fhir":
			if len(r.Rules) > 0 {
				add(p+".rules", "rules belong to kind rest routes; FHIR routes are authorized by SMART scopes")
			}
		case "rest":
			if len(r.Rules) == 0 {
				add(p+".rules", "a rest route without rules refuses everything")
			}
			for j, rule := range r.Rules {
				if _, _, err := ParseRESTMatch(rule.Match); err != nil {
					add(fmt.Sprintf("%s.rules[%d].match", p, j), "%v", err)
				}
				if len(rule.Scopes) == 0 {
					add(fmt.Sprintf("%s.rules[%d].scopes", p, j), "a rule needs at least one scope")
				}
			}
		default:
			add(p+".kind", "kind must be fhir or rest, not %q", r.Kind)
		}
		if u, err := url.Parse(r.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			add(p+".upstream", "%q is not an absolute http(s) base URL", r.Upstream)
		}
		if ua := r.UpstreamAuth; ua != nil {
			if (ua.BearerTokenFile == "") == (ua.BearerTokenEnv == "") {
				add(p+".upstream_auth", "set exactly one of bearer_token_file and bearer_token_env")
			}
		}
		if r.MaxRequestBytes < 0 {
			add(p+".max_request_bytes", "cannot be negative")
		}
	}

	if c.Audit.Store == "" {
		add("audit.store", "an audit store is required (sqlite:///path/audit.db or postgres://...)")
	} else if !strings.HasPrefix(c.Audit.Store, "sqlite://") && !strings.HasPrefix(c.Audit.Store, "postgres://") && !strings.HasPrefix(c.Audit.Store, "postgresql://") {
		add("audit.store", "%q is neither sqlite:// nor postgres://", redactDSN(c.Audit.Store))
	}
	if c.Audit.ForwardURL != "" {
		if err := checkFetchURL(c.Audit.ForwardURL); err != nil {
			add("audit.forward_url", "%v", err)
		}
	}
	if c.Redis != nil {
		if u, err := url.Parse(c.Redis.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			add("redis.url", "not a redis:// or rediss:// URL")
		}
	}
	return ps
}

// checkFetchURL accepts https anywhere and http only on loopback, where a
// key set or audit feed cannot be tampered with on the wire.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("%q: plain http is accepted only on loopback", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}

// redactDSN hides a password in a store URL before it is printed.
func redactDSN(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

// ParseRESTMatch splits a REST rule "METHOD /path/{param}" into its method
// and path pattern.
func ParseRESTMatch(s string) (method, pattern string, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return "", "", fmt.Errorf("%q: write METHOD /path, e.g. GET /claims/{id}", s)
	}
	switch f[0] {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE":
	default:
		return "", "", fmt.Errorf("%q: unknown method %s", s, f[0])
	}
	if !strings.HasPrefix(f[1], "/") {
		return "", "", fmt.Errorf("%q: the path must start with /", s)
	}
	return f[0], f[1], nil
}

// Agent returns the registered agent with the given id.
func (c *Config) Agent(id string) (AgentConfig, bool) {
	for _, a := range c.Agents {
		if a.ID == id {
			return a, true
		}
	}
	return AgentConfig{}, false
}

// RoleNames returns the sorted role names.
func (c *Config) RoleNames() []string {
	names := make([]string, 0, len(c.Roles))
	for n := range c.Roles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
