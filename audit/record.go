package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Record kinds. An intent is written before forwarding; an event is the
// final AuditEvent of an access (complete, refused, failed, or closed as
// incomplete). Searches return events only; the chain holds both.
const (
	KindIntent = "intent"
	KindEvent  = "event"
)

// Record is one link of the chain as stored. Body is the record's JSON
// exactly as hashed: an event's AuditEvent as served, or an intent's
// compact document (see intent.go); nothing else of a record is ever
// derived again from Body, so the bytes stay authoritative.
type Record struct {
	Seq       int64
	Kind      string
	EventID   string // AuditEvent.id; an intent and its event share it
	RequestID string
	Source    string // gateway instance that wrote it
	Recorded  time.Time
	Body      []byte
	Prev      string // hex SHA-256 of the previous record, "" for seq 1
	Hash      string // hex RecordHash
	// Keys are the search index keys of an event (indexKeys of the refsOf
	// its Body), computed when it is recorded, for the index writer; Scan
	// and Search leave them empty.
	Keys []int64
	// recordedUS is the stored search column for date (microseconds since
	// the epoch); Verify checks it against the hashed Recorded.
	recordedUS int64
}

// Ref is one searchable value of an event: Key is a search parameter name
// (agent, patient, entity, subtype, action, outcome), Value its token.
type Ref struct{ Key, Value string }

// RecordHash is the canonical hash of a record, hex SHA-256 over:
//
//	"fhirwall-audit-v1\n" seq "\n" prev "\n" kind "\n" eventID "\n"
//	requestID "\n" source "\n" recorded "\n" len(body) "\n" body
//
// where seq and len(body) are decimal, prev is hex ("" for the first
// record) and recorded is RFC 3339 with nanoseconds in UTC. Every field is
// newline-terminated and the body is length-prefixed, so no two different
// records share an encoding. The body is the stored JSON bytes verbatim
// (never re-serialized), so any flipped byte changes the hash.
func RecordHash(r *Record) string {
	h := sha256.New()
	var buf []byte
	buf = append(buf, "fhirwall-audit-v1\n"...)
	buf = strconv.AppendInt(buf, r.Seq, 10)
	buf = append(buf, '\n')
	buf = append(buf, r.Prev...)
	buf = append(buf, '\n')
	for _, s := range []string{r.Kind, r.EventID, r.RequestID, r.Source} {
		buf = append(buf, s...)
		buf = append(buf, '\n')
	}
	buf = append(buf, r.Recorded.UTC().Format(time.RFC3339Nano)...)
	buf = append(buf, '\n')
	buf = strconv.AppendInt(buf, int64(len(r.Body)), 10)
	buf = append(buf, '\n')
	h.Write(buf)
	h.Write(r.Body)
	return hex.EncodeToString(h.Sum(nil))
}

// Head is the last record of the chain.
type Head struct {
	Seq  int64
	Hash string
}

// Checkpoint is a signed statement that the chain had Hash at Seq.
type Checkpoint struct {
	Seq     int64
	Hash    string
	Created time.Time
	JWS     string // compact JWS over {"seq","hash","iat","src"}
}

// Query selects events for the auditor API. Every non-empty Refs group is
// ANDed; values within a group are ORed.
type Query struct {
	Refs []RefGroup
	// Since and Until bound Recorded: Since <= recorded < Until; zero means
	// unbounded.
	Since, Until time.Time
	// After is the keyset cursor: only seq < After when Desc, seq > After
	// otherwise; 0 means from the start.
	After int64
	Desc  bool
	Limit int
}

// RefGroup matches an event having Key equal to any of Values.
type RefGroup struct {
	Key    string
	Values []string
}

// Store is where records live. Implementations: SQLite and PostgreSQL (one
// SQL implementation, two dialects). The contract every store meets, and the
// shared test suite checks:
//
//   - Append is all-or-nothing and durable when it returns nil: the records
//     get consecutive Seq after the current head, Prev and Hash filled in,
//     inside one transaction that holds the store's write lock, so several
//     gateway processes sharing a database still build one chain. It
//     writes the records only, not their search index.
//   - Index writes search index rows of records already appended, all
//     written by source, and moves source's index mark to mark (when
//     mark > 0; marks only grow), in one transaction that need not be
//     durable: the index is derived from the hashed bodies, so what a
//     crash loses of it is rebuilt from the marks at the next start.
//   - Nothing of the chain is ever updated or deleted.
type Store interface {
	Append(ctx context.Context, recs []*Record) error
	Index(ctx context.Context, source string, rows []IndexRow, mark int64) error
	// IndexedKeys counts how many of keys the index holds for seq.
	IndexedKeys(ctx context.Context, seq int64, keys []int64) (int, error)
	// IndexMarks returns, per source, the highest Seq up to which that
	// source's events are indexed; the source "*" is how far a catch-up
	// indexed every source's events (see catchUpIndex). Marks only grow.
	IndexMarks(ctx context.Context) (map[string]int64, error)
	Head(ctx context.Context) (Head, error)
	AddCheckpoint(ctx context.Context, cp Checkpoint) error
	// Checkpoints returns all checkpoints in Seq order.
	Checkpoints(ctx context.Context) ([]Checkpoint, error)
	// Scan calls fn for every record with Seq >= from, in Seq order.
	Scan(ctx context.Context, from int64, fn func(*Record) error) error
	Search(ctx context.Context, q Query) ([]*Record, error)
	// Event returns the event with that AuditEvent id, or nil.
	Event(ctx context.Context, eventID string) (*Record, error)
	// Unfinished returns the intents written by source that have no event.
	Unfinished(ctx context.Context, source string) ([]*Record, error)
	Ping(ctx context.Context) error
	Close() error
}
