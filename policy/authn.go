package policy

// This file is the entry point of agent authentication: the Authenticator,
// what it is built from (IssuerSpec, AuthOptions) and what it yields
// (Principal). The order of checks in Authenticate is the security argument;
// read verify before changing anything here.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// IssuerSpec is one trusted token issuer, as configured under auth.issuers.
// NewAuthenticator validates every field and refuses the whole set of
// issuers when one is wrong; a spec is never changed after construction (a
// reload builds a new Authenticator).
type IssuerSpec struct {
	// Issuer is compared byte for byte with the token's "iss" claim; it
	// picks which keys and rules apply to a token.
	Issuer string
	// JWKSURL is where the issuer publishes its JSON Web Key Set. It must be
	// https, except on a loopback host (development issuers, tests). Exactly
	// one of JWKSURL and JWKSFile is set.
	JWKSURL string
	// JWKSFile is a local JWK Set, read once by NewAuthenticator.
	JWKSFile string
	// Audiences lists the "aud" values that name this gateway; a token must
	// carry at least one of them. At least one is required.
	Audiences []string
	// Algorithms is the allow-list of JWS algorithms (RS256, RS384, RS512,
	// PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519). The token's
	// "alg" header only selects within it. HS* and "none" are refused at
	// construction: a gateway that verifies with a shared secret could be
	// handed a token "signed" with the issuer's public key.
	Algorithms []string
	// AgentClaim names the claim that holds the agent id. Empty means "sub",
	// falling back to "client_id" when the token has no "sub". A non-empty
	// value is used alone, with no fallback.
	AgentClaim string
	// Types lists the accepted "typ" header values, compared without case
	// and without an "application/" prefix. Empty means ["at+jwt"] (RFC
	// 9068), so an ID token or a logout token is never taken for an access
	// token. Listing "JWT" also admits tokens with no "typ" at all, for IdPs
	// that do not set it.
	Types []string
	// ClockSkew is the tolerance applied to exp, nbf and iat. Zero means
	// 60s; more than 5m is refused.
	ClockSkew time.Duration
	// MinRefreshInterval bounds how often an unknown "kid" may make the
	// gateway fetch JWKSURL again: at most once per interval, so a flood of
	// tokens with random kids cannot make fhirwall hammer the IdP. Zero
	// means 30s.
	MinRefreshInterval time.Duration
	// RefreshInterval is how often JWKSURL is fetched in the background, and
	// the age after which Authenticate asks for a fresh copy. Zero means 15m.
	RefreshInterval time.Duration
}

// Principal is an authenticated agent: who it is and what its token says.
// A Principal returned by Authenticate belongs to the caller.
type Principal struct {
	// AgentID is the registered agent, from the issuer's agent claim.
	AgentID string
	// Issuer is the token's "iss", equal to a configured IssuerSpec.Issuer.
	Issuer   string
	Subject  string // "sub", may be empty
	ClientID string // "client_id", may be empty
	JTI      string // "jti", may be empty
	// Scopes come from "scope" (space separated) or "scp" (array); a token
	// carrying both is refused as ambiguous.
	Scopes []string
	// Patient is the "patient" claim (SMART launch context), may be empty.
	Patient string
	// PurposeOfUse is the "purpose_of_use" claim (string or array).
	PurposeOfUse []string
	// ExpiresAt is "exp"; IssuedAt is "iat" (zero when absent).
	ExpiresAt, IssuedAt time.Time
	// TokenHash is the hex SHA-256 of the token, for revocation and audit
	// correlation. The token itself is never kept.
	TokenHash string
}

func (p *Principal) clone() *Principal {
	c := *p
	c.Scopes = slices.Clone(p.Scopes)
	c.PurposeOfUse = slices.Clone(p.PurposeOfUse)
	return &c
}

// AuthOptions are the runtime dependencies of an Authenticator.
type AuthOptions struct {
	// HTTPClient fetches JWKS URLs. Nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// CacheSize bounds the verified-token cache. Zero means 10000; a
	// negative value disables the cache (every token is verified).
	CacheSize int
	// MaxTokenBytes bounds the bearer token; longer ones are refused before
	// any decoding. Zero means 8 KiB.
	MaxTokenBytes int
	// Now is the clock (tests). Nil means time.Now.
	Now func() time.Time
	// Registered reports whether an agent id is registered. It is required:
	// only registered agents pass, and it is asked on every request, cache
	// hits included, so a removed agent stops passing at once.
	Registered func(agentID string) bool
}

const (
	authnDefaultCacheSize     = 10000
	authnDefaultMaxTokenBytes = 8 << 10
	authnDefaultSkew          = 60 * time.Second
	authnMaxSkew              = 5 * time.Minute
	authnDefaultMinRefresh    = 30 * time.Second
	authnDefaultRefresh       = 15 * time.Minute
	authnFetchTimeout         = 10 * time.Second
)

// Authenticator checks bearer tokens against the trusted issuers. It is
// safe for concurrent use. Build one with NewAuthenticator and stop its
// background JWKS refresh with Close.
type Authenticator struct {
	issuers     map[string]*authnIssuer
	agentClaims []string // custom agent claims the payload reader must capture
	cache       *authnCache
	maxToken    int
	now         func() time.Time
	registered  func(string) bool
}

// NewAuthenticator validates issuers and opts and builds an Authenticator.
// jwks_file key sets are read now (an unreadable or empty file is an
// error); jwks_url key sets are fetched in the background, so construction
// never waits on an IdP (see Ready). Every problem found is reported, joined.
func NewAuthenticator(issuers []IssuerSpec, opts AuthOptions) (*Authenticator, error) {
	if opts.Registered == nil {
		return nil, errors.New("authn: AuthOptions.Registered is required (only registered agents may pass)")
	}
	if len(issuers) == 0 {
		return nil, errors.New("authn: at least one trusted issuer is required")
	}
	a := &Authenticator{
		issuers:    make(map[string]*authnIssuer, len(issuers)),
		maxToken:   opts.MaxTokenBytes,
		now:        opts.Now,
		registered: opts.Registered,
	}
	if a.maxToken == 0 {
		a.maxToken = authnDefaultMaxTokenBytes
	}
	if a.maxToken < 0 {
		return nil, fmt.Errorf("authn: MaxTokenBytes %d is negative", opts.MaxTokenBytes)
	}
	if a.now == nil {
		a.now = time.Now
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout: authnFetchTimeout,
			// A redirect must meet the same bar as the configured URL.
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return errors.New("jwks: too many redirects")
				}
				return authnCheckJWKSURL(req.URL.String())
			},
		}
	}
	switch {
	case opts.CacheSize < 0:
		a.cache = nil
	case opts.CacheSize == 0:
		a.cache = newAuthnCache(authnDefaultCacheSize)
	default:
		a.cache = newAuthnCache(opts.CacheSize)
	}

	var errs []error
	for i, spec := range issuers {
		iss, err := compileIssuer(spec, client, a.now)
		if err != nil {
			errs = append(errs, fmt.Errorf("authn: issuer %d (%q): %w", i, spec.Issuer, err))
			continue
		}
		if _, dup := a.issuers[iss.issuer]; dup {
			errs = append(errs, fmt.Errorf("authn: issuer %d (%q): configured twice", i, spec.Issuer))
			continue
		}
		a.issuers[iss.issuer] = iss
		if iss.agentClaim != "" && !slices.Contains(a.agentClaims, iss.agentClaim) {
			a.agentClaims = append(a.agentClaims, iss.agentClaim)
		}
	}
	if err := errors.Join(errs...); err != nil {
		for _, iss := range a.issuers {
			iss.keys.close()
		}
		return nil, err
	}
	for _, iss := range a.issuers {
		iss.keys.start()
	}
	return a, nil
}

// Authenticate checks the request's bearer token and returns the agent it
// identifies. Any doubt is a refusal: the error is a *fhir.Error with reason
// token-missing, token-malformed, token-invalid, token-expired,
// token-not-yet-valid, issuer-unknown, audience-mismatch or agent-unknown,
// and its Detail never contains the token. ctx bounds a JWKS refresh that an
// unknown key id may trigger.
func (a *Authenticator) Authenticate(ctx context.Context, h http.Header) (*Principal, error) {
	token, err := authnBearer(h, a.maxToken)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(token))
	now := a.now()
	if p, ok := a.cache.get(sum, now); ok {
		if !a.registered(p.AgentID) {
			return nil, authnRefuse(fhir.ReasonAgentUnknown, "the agent is not registered", nil)
		}
		return p.clone(), nil
	}
	p, err := a.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if !a.registered(p.AgentID) {
		return nil, authnRefuse(fhir.ReasonAgentUnknown, "the agent is not registered", nil)
	}
	p.TokenHash = hex.EncodeToString(sum[:])
	a.cache.put(sum, p, p.ExpiresAt)
	return p.clone(), nil
}

// Ready reports whether every jwks_url issuer has a key set loaded. An
// issuer without one is fetched again (within its MinRefreshInterval bound)
// before Ready answers, so a readiness probe also drives recovery.
func (a *Authenticator) Ready(ctx context.Context) error {
	var errs []error
	for _, iss := range a.issuers {
		if iss.keys.loaded() {
			continue
		}
		_ = iss.keys.refresh(ctx, false)
		if !iss.keys.loaded() {
			errs = append(errs, fmt.Errorf("authn: issuer %q: no key set loaded from %s: %w", iss.issuer, iss.keys.url, iss.keys.lastError()))
		}
	}
	return errors.Join(errs...)
}

// Close stops the background JWKS refreshes and waits for them to end.
// Authenticate keeps working on the key sets already loaded.
func (a *Authenticator) Close() {
	for _, iss := range a.issuers {
		iss.keys.close()
	}
}
