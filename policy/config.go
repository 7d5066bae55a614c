package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is fhirwall's configuration file as decoded, before it is compiled
// into a running gateway. Its field comments are the user documentation of
// each key (docs/configuration.md is generated from the same words); keep
// them true.
//
// A Config is immutable once Load returns it; a reload decodes a new one.
type Config struct {
	// Listen is the address the gateway listens on, host:port.
	Listen string `yaml:"listen"`
	// PublicBaseURL is the gateway's own base URL as agents reach it. Every
	// upstream URL in headers and bodies is rewritten to it.
	PublicBaseURL string `yaml:"public_base_url"`
	// Auth lists the token issuers fhirwall trusts.
	Auth AuthConfig `yaml:"auth"`
	// Agents are the registered AI agents; only these may call.
	Agents []AgentConfig `yaml:"agents"`
	// Roles give agents their scope ceilings, masks, operations and limits.
	Roles map[string]RoleConfig `yaml:"roles"`
	// ScopeMap turns admin-named scopes found in tokens into SMART scopes.
	ScopeMap map[string][]string `yaml:"scope_map"`
	// Masks are named mask profiles: lists of FHIR element paths (or
	// rules with an action) removed or transformed in responses.
	Masks map[string][]MaskRule `yaml:"masks"`
	// Masking holds settings shared by every mask profile.
	Masking MaskingConfig `yaml:"masking"`
	// Routes are the upstream services fhirwall fronts.
	Routes []RouteConfig `yaml:"routes"`
	// Audit says where AuditEvents are stored.
	Audit AuditConfig `yaml:"audit"`
	// Redis, when set, holds the state replicas share (revocations, rate
	// limits, patient budgets). Without it that state lives in memory.
	Redis *RedisConfig `yaml:"redis"`
	// AutoRevokeOnPatientBudget revokes an agent on every replica the
	// first time it crosses its patients_per_hour budget (restore it with
	// fhirwall admin restore). The revocation is audited.
	AutoRevokeOnPatientBudget bool `yaml:"auto_revoke_on_patient_budget"`
	// RevocationsFile, without redis, is where the kill switch keeps its
	// revocations so that they survive a restart and `fhirwall admin
	// revoke` reaches the running gateway within a second. Default:
	// revocations.json beside a SQLite audit store.
	RevocationsFile string `yaml:"revocations_file"`
	// Timeouts bound every side of a proxied exchange.
	Timeouts TimeoutsConfig `yaml:"timeouts"`

	// File is the path the configuration was read from ("" for embedded).
	File string `yaml:"-"`
	// Version identifies this configuration's content (a hash), recorded
	// in every AuditEvent as the policy version in force.
	Version string `yaml:"-"`

	root *yaml.Node
}

// AuthConfig lists trusted token issuers.
type AuthConfig struct {
	Issuers []IssuerConfig `yaml:"issuers"`
}

// IssuerConfig is one trusted token issuer.
type IssuerConfig struct {
	// Issuer is the exact `iss` value of its tokens.
	Issuer string `yaml:"issuer"`
	// JWKSURL is where its signing keys are fetched (https, or http on
	// loopback). Exactly one of JWKSURL and JWKSFile is set.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSFile is a local JWKS file with its signing keys.
	JWKSFile string `yaml:"jwks_file"`
	// Audiences: a token's `aud` must contain one of them.
	Audiences []string `yaml:"audiences"`
	// Algorithms is the allow-list of signature algorithms (never taken
	// from the token). HMAC algorithms and "none" are refused.
	Algorithms []string `yaml:"algorithms"`
	// AgentClaim is the claim naming the agent; default "sub", then
	// "client_id".
	AgentClaim string `yaml:"agent_claim"`
	// TokenTypes are the accepted `typ` header values; default ["at+jwt"]
	// (RFC 9068). Add "JWT" only for an IdP that cannot set at+jwt.
	TokenTypes []string `yaml:"token_types"`
	// ClockSkew is the leeway on exp, nbf and iat; default 60s, at most 5m.
	ClockSkew Duration `yaml:"clock_skew"`
}

// AgentConfig is one registered agent.
type AgentConfig struct {
	// ID is the agent's identity as its tokens carry it in agent_claim.
	ID string `yaml:"id"`
	// Roles name entries of roles.
	Roles []string `yaml:"roles"`
	// Issuer binds the agent to one trusted issuer: a token naming this
	// agent from any other issuer is refused. Required when more than one
	// issuer is trusted, so that no issuer can speak for another's agents.
	Issuer string `yaml:"issuer"`
	// Description is free text for admins.
	Description string `yaml:"description"`
}

// RoleConfig is what a role grants.
type RoleConfig struct {
	// Scopes are the ceilings: a token's scopes are cut down to them.
	Scopes []string `yaml:"scopes"`
	// Masks name mask profiles applied to every response to this role.
	Masks []string `yaml:"masks"`
	// Operations allowed by name, e.g. ["$everything"]; deny by default.
	Operations []string `yaml:"operations"`
	// Limits bound what an agent with this role may do; an agent with
	// several roles gets the strictest of each.
	Limits LimitsConfig `yaml:"limits"`
	// Admin lets the role use the admin API (/admin).
	Admin bool `yaml:"admin"`
}

// LimitsConfig are per-agent guardrails; zero means unlimited.
type LimitsConfig struct {
	RequestsPerSecond    float64 `yaml:"requests_per_second"`
	Burst                int     `yaml:"burst"`
	PatientsPerHour      int     `yaml:"patients_per_hour"`
	ResourcesPerResponse int     `yaml:"resources_per_response"`
	BulkCallsPerDay      int     `yaml:"bulk_calls_per_day"`
}

// MaskRule is one element to mask. In YAML it is either a plain path
// ("Patient.telecom") or a mapping with path, action and replacement.
type MaskRule struct {
	// Path is a FHIR element path (Patient.telecom,
	// Patient.identifier.where(system='...'), HumanName, Reference.display)
	// or, on REST routes, a gjson path.
	Path string `yaml:"path"`
	// Action is remove (default), redact, hash or generalize.
	Action string `yaml:"action"`
	// Replacement is the text written by redact.
	Replacement string `yaml:"replacement"`
	line        int
}

// MaskingConfig holds settings shared by all mask profiles.
type MaskingConfig struct {
	// HashKeyFile holds the secret key of the hash action (HMAC-SHA256).
	HashKeyFile string `yaml:"hash_key_file"`
	// MaxResourceBytes caps one resource in a response; a larger one is
	// refused, never passed through unmasked. Default 16 MiB.
	MaxResourceBytes int64 `yaml:"max_resource_bytes"`
}

// RouteConfig is one upstream service.
type RouteConfig struct {
	// Name identifies the route in logs, metrics and audit.
	Name string `yaml:"name"`
	// Prefix is the path under which the route is served, e.g. /fhir.
	Prefix string `yaml:"prefix"`
	// Kind is fhir (a FHIR R4 server) or rest (a JSON/REST service).
	Kind string `yaml:"kind"`
	// Upstream is the base URL requests are forwarded to.
	Upstream string `yaml:"upstream"`
	// UpstreamAuth is the route's own credential; the agent's token is
	// never forwarded.
	UpstreamAuth *UpstreamAuthConfig `yaml:"upstream_auth"`
	// Enforce: when false (shadow mode) decisions are computed and audited
	// but not enforced. Default true.
	Enforce *bool `yaml:"enforce"`
	// Rules map REST requests to required scopes (kind rest only).
	Rules []RESTRule `yaml:"rules"`
	// MaxRequestBytes caps a request body. Default 10 MiB.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
}

// Enforced reports whether the route enforces its decisions.
func (r RouteConfig) Enforced() bool { return r.Enforce == nil || *r.Enforce }

// UpstreamAuthConfig is a static bearer credential for the upstream.
type UpstreamAuthConfig struct {
	// BearerTokenFile is a file holding the token.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// BearerTokenEnv is an environment variable holding the token.
	BearerTokenEnv string `yaml:"bearer_token_env"`
}

// RESTRule grants a REST request pattern to holders of some scopes.
type RESTRule struct {
	// Match is "METHOD /path/{param}".
	Match string `yaml:"match"`
	// Scopes: any one of them grants the request.
	Scopes []string `yaml:"scopes"`
	// Masks are gjson paths removed from the JSON response.
	Masks []string `yaml:"masks"`
}

// AuditConfig says where AuditEvents go.
type AuditConfig struct {
	// Store is sqlite:///path/to/audit.db or postgres://...
	Store string `yaml:"store"`
	// CheckpointKeyFile is the Ed25519 key that signs checkpoints;
	// generated beside a SQLite store when unset.
	CheckpointKeyFile string `yaml:"checkpoint_key_file"`
	// CheckpointEvery signs a checkpoint every N records (default 1000).
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval signs a checkpoint at least this often (default 1m).
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
	// Stdout also writes each event as a JSON line to stdout.
	Stdout bool `yaml:"stdout"`
	// ForwardURL also POSTs each event to an external FHIR audit
	// repository (never instead of the local record).
	ForwardURL string `yaml:"forward_url"`
}

// RedisConfig is the shared state store.
type RedisConfig struct {
	// URL is redis://host:port/db (or rediss://).
	URL string `yaml:"url"`
	// FailOpenRateLimits lets requests through rate limits while Redis is
	// unreachable. Revocation checks always fail closed.
	FailOpenRateLimits bool `yaml:"fail_open_rate_limits"`
}

// TimeoutsConfig bounds each side of an exchange. Zero takes the default.
type TimeoutsConfig struct {
	ReadHeader     Duration `yaml:"read_header"`     // default 10s
	Read           Duration `yaml:"read"`            // default 60s
	Write          Duration `yaml:"write"`           // default 0: long streams
	Idle           Duration `yaml:"idle"`            // default 120s
	UpstreamDial   Duration `yaml:"upstream_dial"`   // default 5s
	UpstreamHeader Duration `yaml:"upstream_header"` // default 60s
}

// Duration is a time.Duration written as "30s" or "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML decodes a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (like 30s or 5m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration, or def when d is zero.
func (d Duration) D(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// UnmarshalYAML accepts a plain path or a mapping, refusing unknown keys.
func (m *MaskRule) UnmarshalYAML(n *yaml.Node) error {
	m.line = n.Line
	switch n.Kind {
	case yaml.ScalarNode:
		m.Path = n.Value
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch k.Value {
			case "path":
				m.Path = v.Value
			case "action":
				m.Action = v.Value
			case "replacement":
				m.Replacement = v.Value
			default:
				return fmt.Errorf("line %d: field %s not found in type mask rule", k.Line, k.Value)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: a mask rule is a path or a mapping with path and action", n.Line)
}

// Problem is one thing wrong with a configuration, located in its file.
type Problem struct {
	File string
	Line int
	// Key is the dotted path of the offending key, e.g. roles.billing.masks[1].
	Key string
	Msg string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a configuration. It is an error so a
// failed load can be returned as one; it always lists all of them.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the configuration file at path. On failure the
// error is Problems (every problem, each with file and line) or an I/O error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration held in memory; name is used
// in problem locations.
func Parse(name string, data []byte) (*Config, error) {
	cfg := &Config{File: name}
	var problems Problems
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{yamlProblem(name, err.Error())}
	}
	if root.Kind == 0 {
		return nil, Problems{{File: name, Line: 1, Msg: "the file is empty"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				problems = append(problems, yamlProblem(name, msg))
			}
		} else {
			problems = append(problems, yamlProblem(name, err.Error()))
		}
	}
	cfg.root = &root
	cfg.Version = contentVersion(data)
	problems = append(problems, cfg.validate()...)
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		return nil, problems
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblem turns a yaml error message into a located Problem.
func yamlProblem(file, msg string) Problem {
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimSpace(msg)
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Msg: m[2]}
	}
	return Problem{File: file, Msg: msg}
}

// Line returns the line of the key at the dotted path (e.g.
// "roles.billing.masks[1]"), or of its nearest existing parent.
func (c *Config) Line(path string) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n := c.root.Content[0]
	line := n.Line
	for _, part := range splitKeyPath(path) {
		next, l := childNode(n, part)
		if next == nil {
			break
		}
		n, line = next, l
	}
	return line
}

// Problem returns a Problem located at the dotted key path.
func (c *Config) Problem(path, format string, args ...any) Problem {
	return Problem{File: c.File, Line: c.Line(path), Key: path, Msg: fmt.Sprintf(format, args...)}
}

func splitKeyPath(path string) []string {
	var parts []string
	for _, dotted := range strings.Split(path, ".") {
		for dotted != "" {
			i := strings.IndexByte(dotted, '[')
			if i < 0 {
				parts = append(parts, dotted)
				break
			}
			if i > 0 {
				parts = append(parts, dotted[:i])
			}
			j := strings.IndexByte(dotted[i:], ']')
			if j < 0 {
				parts = append(parts, dotted[i:])
				break
			}
			parts = append(parts, dotted[i:i+j+1])
			dotted = dotted[i+j+1:]
		}
	}
	return parts
}

// childNode finds a mapping key or a sequence index ("[3]") below n and
// returns the child and the line of its key.
func childNode(n *yaml.Node, part string) (*yaml.Node, int) {
	if strings.HasPrefix(part, "[") {
		idx, err := strconv.Atoi(strings.Trim(part, "[]"))
		if err != nil || n.Kind != yaml.SequenceNode || idx < 0 || idx >= len(n.Content) {
			return nil, 0
		}
		return n.Content[idx], n.Content[idx].Line
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == part {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}
