package guard

import (
	"context"
	"errors"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// backend builds n guards that share one state: n replicas on one Redis, or
// on the in-memory backend the same single instance n times (memory state is
// not shared between processes, so one instance is all it can be).
type backend struct {
	name   string
	guards func(t *testing.T, n int, opts Options) []*Guard
}

var backends = []backend{
	{"memory", func(t *testing.T, n int, opts Options) []*Guard {
		g := newGuard(t, opts)
		out := make([]*Guard, n)
		for i := range out {
			out[i] = g
		}
		return out
	}},
	{"redis", func(t *testing.T, n int, opts Options) []*Guard {
		c, prefix := sharedRedis(t)
		opts.Redis, opts.KeyPrefix = c, prefix
		out := make([]*Guard, n)
		for i := range out {
			out[i] = newGuard(t, opts)
		}
		return out
	}},
}

func newGuard(t testing.TB, opts Options) *Guard {
	t.Helper()
	g, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// forEachBackend runs the same behavioural test on every backend.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// wantReason fails unless err carries reason (nil reason: err must be nil).
func wantReason(t testing.TB, what string, err error, reason fhir.Reason) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("%s: unexpected refusal: %v", what, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("%s: passed, want %s", what, reason)
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Reason != reason {
		t.Fatalf("%s: got %v, want reason %s", what, err, reason)
	}
}
