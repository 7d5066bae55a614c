package policy

import (
	"context"
	"testing"
)

// BenchmarkAuthenticate measures Authenticate per request: "cold" verifies
// every time (cache disabled: header checks, claim parsing, signature),
// "cached" is a repeat token answered from the verified-token cache.
//
//	go test ./policy -run '^$' -bench BenchmarkAuthenticate -benchtime 2s
func BenchmarkAuthenticate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
		alg   string
	}{
		{"cold/ES256", -1, "ES256"},
		{"cold/RS256", -1, "RS256"},
		{"cached/ES256", 0, "ES256"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newAuthnTestSetup(b, func(_ *IssuerSpec, o *AuthOptions) { o.CacheSize = bc.cache })
			hdr := map[string]any{"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"}
			var key any = s.keys.ec1
			if bc.alg == "RS256" {
				hdr = map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"}
				key = s.keys.rsa1
			}
			h := authnBearerHeader(authnSign(b, hdr, authnDefaultClaims(s.clock.Now()), key))
			ctx := context.Background()
			if _, err := s.auth.Authenticate(ctx, h); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.auth.Authenticate(ctx, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
