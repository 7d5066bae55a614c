package policy

import (
	"strings"
	"testing"
	"time"
)

// TestNewAuthenticatorRefuses: configurations that would weaken
// verification are refused at construction, with a message naming why.
func TestNewAuthenticatorRefuses(t *testing.T) {
	ok := IssuerSpec{
		Issuer:     authnTestIssuer,
		JWKSURL:    "https://idp.test/jwks",
		Audiences:  []string{authnTestAudience},
		Algorithms: []string{"ES256"},
	}
	reg := func(string) bool { return true }
	tests := []struct {
		name  string
		specs func() []IssuerSpec
		opts  AuthOptions
		why   string
	}{
		{"HS256", func() []IssuerSpec { s := ok; s.Algorithms = []string{"ES256", "HS256"}; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "HMAC"},
		{"hs512 lower case", func() []IssuerSpec { s := ok; s.Algorithms = []string{"hs512"}; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "HMAC"},
		{"none", func() []IssuerSpec { s := ok; s.Algorithms = []string{"none"}; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, `"none"`},
		{"unknown alg", func() []IssuerSpec { s := ok; s.Algorithms = []string{"ES256K"}; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "not supported"},
		{"no algorithms", func() []IssuerSpec { s := ok; s.Algorithms = nil; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "at least one algorithm"},
		{"no audience", func() []IssuerSpec { s := ok; s.Audiences = nil; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "at least one audience"},
		{"empty audience", func() []IssuerSpec { s := ok; s.Audiences = []string{""}; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "empty audience"},
		{"empty issuer", func() []IssuerSpec { s := ok; s.Issuer = ""; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "issuer is empty"},
		{"url and file", func() []IssuerSpec { s := ok; s.JWKSFile = "x.json"; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "exclusive"},
		{"no key source", func() []IssuerSpec { s := ok; s.JWKSURL = ""; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "required"},
		{"plain http to a remote IdP", func() []IssuerSpec { s := ok; s.JWKSURL = "http://idp.test/jwks"; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "loopback"},
		{"file scheme", func() []IssuerSpec { s := ok; s.JWKSURL = "file:///etc/jwks"; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "https"},
		{"skew too wide", func() []IssuerSpec { s := ok; s.ClockSkew = 10 * time.Minute; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "maximum"},
		{"negative skew", func() []IssuerSpec { s := ok; s.ClockSkew = -time.Second; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "negative"},
		{"refresh below minimum", func() []IssuerSpec { s := ok; s.RefreshInterval = time.Second; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "shorter"},
		{"empty type", func() []IssuerSpec { s := ok; s.Types = []string{" "}; return []IssuerSpec{s} }, AuthOptions{Registered: reg}, "empty type"},
		{"duplicate issuer", func() []IssuerSpec { return []IssuerSpec{ok, ok} }, AuthOptions{Registered: reg}, "configured twice"},
		{"no issuers", func() []IssuerSpec { return nil }, AuthOptions{Registered: reg}, "at least one trusted issuer"},
		{"no registry", func() []IssuerSpec { return []IssuerSpec{ok} }, AuthOptions{}, "Registered is required"},
		{"negative token bound", func() []IssuerSpec { return []IssuerSpec{ok} }, AuthOptions{Registered: reg, MaxTokenBytes: -1}, "negative"},
		{"missing jwks file", func() []IssuerSpec {
			s := ok
			s.JWKSURL = ""
			s.JWKSFile = "testdata/authn/missing.json"
			return []IssuerSpec{s}
		}, AuthOptions{Registered: reg}, "jwks_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAuthenticator(tc.specs(), tc.opts)
			if err == nil {
				a.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("error %q does not say %q", err, tc.why)
			}
		})
	}
}

// TestNewAuthenticatorAccepts: loopback http and the documented defaults.
func TestNewAuthenticatorAccepts(t *testing.T) {
	a, err := NewAuthenticator([]IssuerSpec{{
		Issuer:     authnTestIssuer,
		JWKSURL:    "http://127.0.0.1:1/jwks",
		Audiences:  []string{authnTestAudience},
		Algorithms: []string{"ES256", "EdDSA", "PS384"},
		Types:      []string{"application/AT+JWT", "JWT"},
	}}, AuthOptions{Registered: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	iss := a.issuers[authnTestIssuer]
	if iss.skew != authnDefaultSkew || iss.keys.minInterval != authnDefaultMinRefresh || iss.keys.interval != authnDefaultRefresh {
		t.Fatalf("defaults: skew %s min %s refresh %s", iss.skew, iss.keys.minInterval, iss.keys.interval)
	}
	if !iss.allowNoTyp || strings.Join(iss.types, ",") != "at+jwt,jwt" {
		t.Fatalf("types %v allowNoTyp %v", iss.types, iss.allowNoTyp)
	}
	if a.maxToken != authnDefaultMaxTokenBytes || a.cache == nil {
		t.Fatal("token bound or cache defaults not applied")
	}
}
