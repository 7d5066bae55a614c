package masking

import (
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"strings"

	"github.com/fhirwall/fhirwall/fhir"
)

// DecodeBody returns a reader of the decoded body for an HTTP
// Content-Encoding: "" and identity pass r through, gzip (and x-gzip) and
// deflate (zlib-wrapped, as RFC 9110 defines it) are decoded. Everything
// else is refused with reason response-unmaskable, including br (the
// standard library has no Brotli decoder; fhirwall asks upstreams for
// identity encoding, so a br answer is a misbehaving upstream) and stacked
// encodings ("gzip, gzip"). The caller closes nothing: the readers need no
// Close for correctness, and a corrupt stream surfaces as a read error that
// makes Rewrite fail.
func DecodeBody(contentEncoding string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
		return r, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fhir.Wrap(fhir.ReasonResponseUnmaskable, err, "the gzip body cannot be decoded")
		}
		return zr, nil
	case "deflate":
		zr, err := zlib.NewReader(r)
		if err != nil {
			return nil, fhir.Wrap(fhir.ReasonResponseUnmaskable, err, "the deflate body cannot be decoded")
		}
		return zr, nil
	}
	return nil, fhir.Errorf(fhir.ReasonResponseUnmaskable, "content encoding %s is not supported", quoteEncoding(contentEncoding))
}

func quoteEncoding(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return fmt.Sprintf("%q", s)
}
