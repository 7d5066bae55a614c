package audit

import "context"

// Reader is the authenticated principal calling the auditor API, set by the
// gateway after it has checked the caller's role (system/AuditEvent.rs).
// The audit package records it as the agent of the audit read.
type Reader struct {
	AgentID    string
	ClientID   string
	JTI        string
	Roles      []string
	SourceAddr string
}

type readerKey struct{}

// WithReader returns ctx carrying the auditor principal. The handler
// refuses (401) any request whose context carries none.
func WithReader(ctx context.Context, r Reader) context.Context {
	return context.WithValue(ctx, readerKey{}, r)
}

// ReaderFrom returns the principal set by WithReader. ok is false if there
// is none or its AgentID is empty.
func ReaderFrom(ctx context.Context) (Reader, bool) {
	r, ok := ctx.Value(readerKey{}).(Reader)
	return r, ok && r.AgentID != ""
}
