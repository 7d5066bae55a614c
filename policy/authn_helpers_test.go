package policy

// Test fixtures for authentication: real keys, a JWKS server that counts
// its fetches, a settable clock and a token builder that can produce any
// header or payload bytes (including ones jwx would refuse to produce), so
// every attack is a real signed token.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	authnTestIssuer   = "https://idp.test"
	authnTestAudience = "https://gateway.test/fhir"
	authnTestAgent    = "agent-billing-07"
)

// authnTestKeys are generated once per test binary: RSA generation is slow.
type authnTestKeys struct {
	rsa1, rsa2     *rsa.PrivateKey
	rsaWeak        *rsa.PrivateKey // 1024 bits, below the floor
	ec1, ec2, evil *ecdsa.PrivateKey
}

var (
	authnKeysOnce sync.Once
	authnKeysVal  authnTestKeys
)

func authnKeys(t testing.TB) authnTestKeys {
	t.Helper()
	authnKeysOnce.Do(func() {
		k := &authnKeysVal
		var err error
		for _, p := range []**rsa.PrivateKey{&k.rsa1, &k.rsa2} {
			if *p, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
		if k.rsaWeak, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
		for _, p := range []**ecdsa.PrivateKey{&k.ec1, &k.ec2, &k.evil} {
			if *p, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
				panic(err)
			}
		}
	})
	return authnKeysVal
}

// authnJWK is one entry of a served JWKS.
type authnJWK struct {
	kid  string
	alg  string // "" leaves the JWK's alg unset
	use  string // "" leaves the JWK's use unset
	priv crypto.Signer
}

func authnPublicJWK(t testing.TB, k authnJWK) jwk.Key {
	t.Helper()
	pub, err := jwk.Import(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if k.kid != "" {
		if err := pub.Set(jwk.KeyIDKey, k.kid); err != nil {
			t.Fatal(err)
		}
	}
	if k.alg != "" {
		if err := pub.Set(jwk.AlgorithmKey, k.alg); err != nil {
			t.Fatal(err)
		}
	}
	if k.use != "" {
		if err := pub.Set(jwk.KeyUsageKey, k.use); err != nil {
			t.Fatal(err)
		}
	}
	return pub
}

func authnJWKSBody(t testing.TB, keys []authnJWK) []byte {
	t.Helper()
	var entries []any
	for _, k := range keys {
		if rk, ok := k.priv.(*rsa.PrivateKey); ok {
			// Written by hand: jwx refuses to build a JWK for a weak RSA key,
			// and a JWKS may still carry one.
			e := map[string]any{
				"kty": "RSA",
				"n":   base64.RawURLEncoding.EncodeToString(rk.N.Bytes()),
				"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(rk.E)).Bytes()),
			}
			if k.kid != "" {
				e["kid"] = k.kid
			}
			if k.alg != "" {
				e["alg"] = k.alg
			}
			entries = append(entries, e)
			continue
		}
		entries = append(entries, authnPublicJWK(t, k))
	}
	b, err := json.Marshal(map[string]any{"keys": entries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// authnTestIdP serves a JWKS that tests can rotate, and counts fetches.
type authnTestIdP struct {
	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte
	status  int
}

func newAuthnTestIdP(t testing.TB, keys []authnJWK) *authnTestIdP {
	t.Helper()
	idp := &authnTestIdP{status: http.StatusOK}
	idp.setKeys(t, keys)
	idp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idp.fetches.Add(1)
		idp.mu.Lock()
		body, status := idp.body, idp.status
		idp.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *authnTestIdP) setKeys(t testing.TB, keys []authnJWK) {
	body := authnJWKSBody(t, keys)
	idp.mu.Lock()
	idp.body = body
	idp.mu.Unlock()
}

func (idp *authnTestIdP) setStatus(status int) {
	idp.mu.Lock()
	idp.status = status
	idp.mu.Unlock()
}

// authnClock is a settable clock.
type authnClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *authnClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *authnClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// authnSignRaw builds a compact JWS from raw header and payload JSON,
// signed with key under alg ("none" leaves the signature empty).
func authnSignRaw(t testing.TB, header, payload string, alg string, key any) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	if alg == "none" {
		return in + "."
	}
	sa, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		t.Fatalf("unknown alg %s", alg)
	}
	signer, err := jws.SignerFor(sa)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(key, []byte(in))
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// authnSign marshals header and claims and signs them.
func authnSign(t testing.TB, header, claims map[string]any, key any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	alg, _ := header["alg"].(string)
	return authnSignRaw(t, string(h), string(c), alg, key)
}

func authnDefaultClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss":       authnTestIssuer,
		"sub":       authnTestAgent,
		"aud":       authnTestAudience,
		"client_id": "billing-client",
		"scope":     "system/Claim.rs system/Coverage.rs",
		"jti":       "jti-1",
		"iat":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
	}
}

func authnBearerHeader(tok string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	return h
}

// authnTestSetup is an Authenticator trusting one IdP, with a set clock.
type authnTestSetup struct {
	keys  authnTestKeys
	idp   *authnTestIdP
	clock *authnClock
	auth  *Authenticator
	spec  IssuerSpec
}

type authnSetupOpt func(*IssuerSpec, *AuthOptions)

func newAuthnTestSetup(t testing.TB, opts ...authnSetupOpt) *authnTestSetup {
	t.Helper()
	keys := authnKeys(t)
	s := &authnTestSetup{keys: keys, clock: &authnClock{t: time.Unix(1_800_000_000, 0)}}
	s.idp = newAuthnTestIdP(t, []authnJWK{
		{kid: "ec-1", priv: keys.ec1},
		{kid: "rsa-1", alg: "RS256", priv: keys.rsa1},
		{kid: "rsa-weak", priv: keys.rsaWeak},
	})
	s.spec = IssuerSpec{
		Issuer:     authnTestIssuer,
		JWKSURL:    s.idp.srv.URL + "/jwks",
		Audiences:  []string{authnTestAudience, "https://gateway.test/other"},
		Algorithms: []string{"ES256", "RS256"},
	}
	ao := AuthOptions{
		HTTPClient: s.idp.srv.Client(),
		Now:        s.clock.Now,
		Registered: func(id string) bool { return id == authnTestAgent || id == "billing-client" },
	}
	for _, o := range opts {
		o(&s.spec, &ao)
	}
	a, err := NewAuthenticator([]IssuerSpec{s.spec}, ao)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	s.auth = a
	if err := a.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}
