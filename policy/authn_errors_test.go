package policy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

func TestWWWAuthenticate(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no error", nil, "Bearer"},
		{"missing token", fhir.Errorf(fhir.ReasonTokenMissing, "no Authorization header"), "Bearer"},
		{"expired", fhir.Errorf(fhir.ReasonTokenExpired, "the token has expired"), `Bearer error="invalid_token", error_description="the token has expired"`},
		{"wrapped", fmt.Errorf("gateway: %w", fhir.Errorf(fhir.ReasonAudienceMismatch, "wrong audience")), `Bearer error="invalid_token", error_description="wrong audience"`},
		{"no detail uses display", &fhir.Error{Reason: fhir.ReasonTokenInvalid}, `Bearer error="invalid_token", error_description="The bearer token is not valid"`},
		{"quotes and backslashes", fhir.Errorf(fhir.ReasonTokenInvalid, `a "b" \c`), `Bearer error="invalid_token", error_description="a 'b' 'c"`},
		{"header injection", fhir.Errorf(fhir.ReasonTokenInvalid, "x\r\nSet-Cookie: a=b\x00é"), `Bearer error="invalid_token", error_description="xSet-Cookie: a=b"`},
		{"not a fhir error", errors.New("boom"), "Bearer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := WWWAuthenticate(tc.err); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
