package policy

// This file turns an IssuerSpec into its runtime form, refusing anything
// that would weaken verification: symmetric or unknown algorithms, a
// missing audience, a clock skew wide enough to keep stolen tokens alive.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// authnIssuer is a validated, immutable IssuerSpec.
type authnIssuer struct {
	issuer     string
	audiences  []string
	algs       []jwa.SignatureAlgorithm
	agentClaim string // "" means sub, then client_id
	types      []string
	allowNoTyp bool
	skew       time.Duration
	keys       *authnKeySource
}

// authnSupportedAlgs are the asymmetric JWS algorithms an issuer may allow.
// HMAC is absent on purpose: with a shared-secret algorithm the verifier's
// key is the signer's key, and a public JWKS key would become a secret
// anybody can sign with.
var authnSupportedAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256":   jwa.RS256(),
	"RS384":   jwa.RS384(),
	"RS512":   jwa.RS512(),
	"PS256":   jwa.PS256(),
	"PS384":   jwa.PS384(),
	"PS512":   jwa.PS512(),
	"ES256":   jwa.ES256(),
	"ES384":   jwa.ES384(),
	"ES512":   jwa.ES512(),
	"EdDSA":   jwa.EdDSA(),
	"Ed25519": jwa.EdDSAEd25519(),
}

func compileIssuer(spec IssuerSpec, client *http.Client, now func() time.Time) (*authnIssuer, error) {
	var errs []error
	iss := &authnIssuer{
		issuer:     spec.Issuer,
		agentClaim: spec.AgentClaim,
		skew:       spec.ClockSkew,
	}
	if spec.Issuer == "" {
		errs = append(errs, errors.New("issuer is empty"))
	}
	if strings.TrimSpace(spec.AgentClaim) != spec.AgentClaim {
		errs = append(errs, fmt.Errorf("agent_claim %q has surrounding spaces", spec.AgentClaim))
	}
	for _, aud := range spec.Audiences {
		if aud == "" {
			errs = append(errs, errors.New("audiences: empty audience"))
			continue
		}
		iss.audiences = append(iss.audiences, aud)
	}
	if len(spec.Audiences) == 0 {
		errs = append(errs, errors.New("audiences: at least one audience is required"))
	}
	for _, name := range spec.Algorithms {
		alg, ok := authnSupportedAlgs[name]
		switch {
		case ok:
			if !slices.Contains(iss.algs, alg) {
				iss.algs = append(iss.algs, alg)
			}
		case strings.HasPrefix(strings.ToUpper(name), "HS"):
			errs = append(errs, fmt.Errorf("algorithms: %q is an HMAC algorithm; only asymmetric algorithms are allowed", name))
		case strings.EqualFold(name, "none"):
			errs = append(errs, errors.New(`algorithms: "none" is never allowed`))
		default:
			errs = append(errs, fmt.Errorf("algorithms: %q is not supported (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA or Ed25519)", name))
		}
	}
	if len(spec.Algorithms) == 0 {
		errs = append(errs, errors.New("algorithms: at least one algorithm is required"))
	}
	types := spec.Types
	if len(types) == 0 {
		types = []string{"at+jwt"}
	}
	for _, t := range types {
		n := authnNormType(t)
		if n == "" {
			errs = append(errs, errors.New("types: empty type"))
			continue
		}
		iss.types = append(iss.types, n)
		if n == "jwt" {
			iss.allowNoTyp = true
		}
	}
	switch {
	case iss.skew == 0:
		iss.skew = authnDefaultSkew
	case iss.skew < 0:
		errs = append(errs, fmt.Errorf("clock_skew %s is negative", spec.ClockSkew))
	case iss.skew > authnMaxSkew:
		errs = append(errs, fmt.Errorf("clock_skew %s exceeds the maximum of %s", spec.ClockSkew, authnMaxSkew))
	}
	minRefresh, refresh := spec.MinRefreshInterval, spec.RefreshInterval
	if minRefresh == 0 {
		minRefresh = authnDefaultMinRefresh
	}
	if refresh == 0 {
		refresh = authnDefaultRefresh
	}
	if minRefresh < 0 || refresh < 0 {
		errs = append(errs, errors.New("refresh intervals must not be negative"))
	} else if refresh < minRefresh {
		errs = append(errs, fmt.Errorf("refresh interval %s is shorter than the minimum refresh interval %s", refresh, minRefresh))
	}
	switch {
	case spec.JWKSURL != "" && spec.JWKSFile != "":
		errs = append(errs, errors.New("jwks_url and jwks_file are exclusive; set one"))
	case spec.JWKSURL == "" && spec.JWKSFile == "":
		errs = append(errs, errors.New("one of jwks_url or jwks_file is required"))
	case spec.JWKSURL != "":
		if err := authnCheckJWKSURL(spec.JWKSURL); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	iss.keys = &authnKeySource{
		url:         spec.JWKSURL,
		file:        spec.JWKSFile,
		algs:        iss.algs,
		client:      client,
		now:         now,
		minInterval: minRefresh,
		interval:    refresh,
		sem:         make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	iss.keys.base, iss.keys.cancelBase = context.WithCancel(context.Background())
	if spec.JWKSFile != "" {
		if err := iss.keys.loadFile(); err != nil {
			iss.keys.cancelBase()
			return nil, err
		}
	}
	return iss, nil
}

// authnCheckJWKSURL refuses key sets fetched over plain HTTP from anywhere
// but the local machine: whoever can rewrite the JWKS in transit can mint
// tokens.
func authnCheckJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("jwks_url: %w", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("jwks_url %q: plain http is only allowed on a loopback host; use https", raw)
		}
	default:
		return fmt.Errorf("jwks_url %q: scheme must be https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("jwks_url %q has no host", raw)
	}
	return nil
}

// authnNormType folds a media type the way RFC 7515 §4.1.9 compares "typ":
// case-insensitively, with the "application/" prefix optional.
func authnNormType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}
