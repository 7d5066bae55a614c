package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/http"
)

// responseRecorder wraps the agent's ResponseWriter to learn what was sent:
// the status, the byte count and the SHA-256 of the exact bytes, which the
// AuditEvent records.
type responseRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	sum    hash.Hash
}

func newResponseRecorder(w http.ResponseWriter) *responseRecorder {
	return &responseRecorder{ResponseWriter: w, sum: sha256.New()}
}

func (r *responseRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	r.sum.Write(b[:n])
	return n, err
}

// Flush lets streamed responses through promptly.
func (r *responseRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *responseRecorder) sha256Hex() string { return hex.EncodeToString(r.sum.Sum(nil)) }
