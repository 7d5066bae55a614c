package policy

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// TestAuthnCacheHonoursExp: a cached token passes until its exp, then goes
// through full verification again, which refuses it once exp+skew is past.
func TestAuthnCacheHonoursExp(t *testing.T) {
	s := newAuthnTestSetup(t)
	now := s.clock.Now()
	c := authnDefaultClaims(now)
	c["exp"] = now.Add(2 * time.Minute).Unix()
	tok := authnSign(t, map[string]any{"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"}, c, s.keys.ec1)
	h := authnBearerHeader(tok)

	if _, err := s.auth.Authenticate(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if n := s.auth.cache.len(); n != 1 {
		t.Fatalf("cache holds %d entries, want 1", n)
	}
	// Take the issuer's keys away: from now on only the cache can say yes.
	keys := s.auth.issuers[authnTestIssuer].keys
	loaded := keys.snap.Load()
	keys.snap.Store(&authnKeySnapshot{byKID: map[string][]authnKey{}, loadedAt: s.clock.Now()})
	s.idp.setKeys(t, []authnJWK{{kid: "ec-2", priv: s.keys.ec2}})
	s.clock.Advance(2*time.Minute - time.Second)
	if _, err := s.auth.Authenticate(context.Background(), h); err != nil {
		t.Fatalf("cached token one second before exp: %v", err)
	}
	s.clock.Advance(time.Second) // exactly exp: the entry stops answering
	if _, err := s.auth.Authenticate(context.Background(), h); fhir.ReasonOf(err) != fhir.ReasonTokenInvalid {
		t.Fatalf("at exp the cache still answered: %v", err)
	}
	// With keys back, verification applies the skew, then refuses.
	keys.snap.Store(loaded)
	if _, err := s.auth.Authenticate(context.Background(), h); err != nil {
		t.Fatalf("at exp, within skew: %v", err)
	}
	s.clock.Advance(61 * time.Second)
	if _, err := s.auth.Authenticate(context.Background(), h); fhir.ReasonOf(err) != fhir.ReasonTokenExpired {
		t.Fatalf("past exp+skew: %v, want token-expired", err)
	}
	if n := s.auth.cache.len(); n != 0 {
		t.Fatalf("expired entry still cached (%d)", n)
	}
}

// TestAuthnCacheRegistration: deregistering an agent takes effect on cached
// tokens too.
func TestAuthnCacheRegistration(t *testing.T) {
	var registered atomic.Bool
	registered.Store(true)
	s := newAuthnTestSetup(t, func(_ *IssuerSpec, o *AuthOptions) {
		o.Registered = func(string) bool { return registered.Load() }
	})
	h := authnBearerHeader(authnECToken(t, s, "ec-1", s.keys.ec1))
	if _, err := s.auth.Authenticate(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	registered.Store(false)
	if _, err := s.auth.Authenticate(context.Background(), h); fhir.ReasonOf(err) != fhir.ReasonAgentUnknown {
		t.Fatalf("deregistered agent from cache: %v", err)
	}
}

// TestAuthnCacheBounded: the cache never grows past CacheSize, and a
// negative size disables it.
func TestAuthnCacheBounded(t *testing.T) {
	for _, tc := range []struct {
		size, max int
	}{{size: 32, max: 32}, {size: -1, max: 0}} {
		s := newAuthnTestSetup(t, func(_ *IssuerSpec, o *AuthOptions) { o.CacheSize = tc.size })
		for i := 0; i < 200; i++ {
			c := authnDefaultClaims(s.clock.Now())
			c["jti"] = strconv.Itoa(i)
			tok := authnSign(t, map[string]any{"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"}, c, s.keys.ec1)
			if _, err := s.auth.Authenticate(context.Background(), authnBearerHeader(tok)); err != nil {
				t.Fatal(err)
			}
		}
		if n := s.auth.cache.len(); n > tc.max || (tc.max > 0 && n == 0) {
			t.Fatalf("size %d: cache holds %d entries, want 1..%d", tc.size, n, tc.max)
		}
	}
}
