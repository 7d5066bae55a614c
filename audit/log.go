package audit

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// Options configures a Log. The zero value of each field has a safe
// default, except that a PostgreSQL store needs a checkpoint key.
type Options struct {
	// Source names this gateway instance (AuditEvent.source, and the owner
	// of intents closed at start-up). Replicas sharing a database must have
	// distinct names, or one would close another's in-flight intents.
	// Default: the host name.
	Source string
	// ServerAddr is the gateway's network address, recorded as the server
	// agent's network (BALP requires it to claim a profile).
	ServerAddr string
	// BaseURL is the public base URL of the auditor API's parent (e.g.
	// https://gw.example.org); "" derives it from each request.
	BaseURL string
	// CheckpointKey signs checkpoints (Ed25519); Verify accepts only
	// checkpoints signed by it, so replicas sharing a database must share
	// the key. If nil, CheckpointKeyFile is
	// loaded (created if missing); if that is "" too, a SQLite store uses
	// "<database file>.checkpoint.key".
	CheckpointKey     crypto.Signer
	CheckpointKeyFile string
	// CheckpointEvery and CheckpointInterval bound the tail that can be
	// truncated undetected. Defaults: 1000 records, 1 minute.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// WriteTimeout bounds each audit write, independently of the client's
	// context. Default 5 s.
	WriteTimeout time.Duration
	// MaxBatch caps records per group commit. Default 256.
	MaxBatch int
	// Sinks receive each final event after it is durable, never in its place.
	Sinks []Sink
	// ReadOnly opens the log for the auditor commands (verify, export,
	// disclosures) next to a running gateway: it writes nothing, closes no
	// intents and never creates a key file. Intent and Record fail with
	// audit-unavailable; the auditor Handler therefore refuses too.
	ReadOnly bool

	now   func() time.Time // tests
	newID func() string    // tests
}

// Log is the audit log of one gateway process. It is safe for concurrent
// use. Its contract, enforced in write: a record reported written is
// committed to the store; anything else is an audit-unavailable error.
type Log struct {
	store   Store
	opts    Options
	signer  *signer
	ec      eventContext
	metrics *metrics
	sinks   []Sink

	queue chan *job
	stop  chan struct{}
	done  chan struct{}

	mu     sync.RWMutex
	closed bool // writes refused (closing, or read-only)
	shut   bool // Close has run

	// syncIdx asks the writer to index everything pending now (see
	// syncIndex); the writer answers on the channel sent.
	syncIdx chan chan error

	// owned by the writer goroutine
	idx        pendingIndex
	head       Head
	sinceCP    int
	lastCPTime time.Time
}

type job struct {
	recs []*Record
	done chan error
	// lazy jobs (completions and continuation events, whose intent is
	// already durable and whose data has already been sent) need not cost
	// an fsync of their own: the writer holds them for up to
	// lazyLinger and commits them with the next durable write.
	lazy bool
	// abandoned is set when the caller stopped waiting (write timeout) and
	// refused the access: if the intent commits anyway, the writer closes
	// it at once instead of leaving it to look like a crash.
	abandoned atomic.Bool
}

var errClosed = errors.New("audit log closed")

// Open opens the store named by dsn and starts the writer. dsn is
// sqlite:///abs/path.db, sqlite://relative/path.db or a postgres:// (or
// postgresql://) URL. Intents this Source left without a completion (a
// crash) are closed as incomplete before Open returns.
func Open(ctx context.Context, dsn string, opts Options) (*Log, error) {
	var (
		st  Store
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" || path == "/" {
			return nil, fmt.Errorf("audit: sqlite dsn %q names no file", dsn)
		}
		if opts.CheckpointKey == nil && opts.CheckpointKeyFile == "" {
			opts.CheckpointKeyFile = path + ".checkpoint.key"
		}
		st, err = OpenSQLite(ctx, path)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if opts.CheckpointKey == nil && opts.CheckpointKeyFile == "" {
			return nil, errors.New("audit: a postgres store needs a checkpoint key (CheckpointKey or CheckpointKeyFile)")
		}
		st, err = OpenPostgres(ctx, dsn)
	default:
		return nil, fmt.Errorf("audit: unsupported store %q (want sqlite:// or postgres://)", redactDSN(dsn))
	}
	if err != nil {
		return nil, err
	}
	l, err := New(ctx, st, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	return l, nil
}

// redactDSN keeps a password out of error messages.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "@"); i >= 0 {
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			return dsn[:j+3] + "REDACTED" + dsn[i:]
		}
	}
	return dsn
}

// New starts a Log over an already opened store; the Log owns it from then
// on and closes it in Close.
func New(ctx context.Context, st Store, opts Options) (*Log, error) {
	if opts.Source == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "fhirwall"
		}
		opts.Source = h
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 1000
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = time.Minute
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.newID == nil {
		opts.newID = newUUID
	}
	key := opts.CheckpointKey
	if key == nil {
		if opts.CheckpointKeyFile == "" {
			return nil, errors.New("audit: no checkpoint key configured")
		}
		load := LoadOrCreateKey
		if opts.ReadOnly {
			load = LoadKey
		}
		k, err := load(opts.CheckpointKeyFile)
		if err != nil {
			return nil, err
		}
		key = k
	}
	sg, err := newSigner(key)
	if err != nil {
		return nil, err
	}
	l := &Log{
		store:   st,
		opts:    opts,
		signer:  sg,
		ec:      eventContext{source: opts.Source, serverAddr: opts.ServerAddr},
		metrics: newMetrics(),
		sinks:   opts.Sinks,
		queue:   make(chan *job, 4*opts.MaxBatch),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		syncIdx: make(chan chan error),
	}
	for _, s := range l.sinks {
		if qs, ok := s.(*queueSink); ok {
			name := qs.name
			qs.failures = func() { l.metrics.sinkFailures.WithLabelValues(name).Inc() }
		}
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*opts.WriteTimeout)
	defer cancel()
	if err := st.Ping(octx); err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		l.closed = true // every write refuses; Close only closes the store
		return l, nil
	}
	if err := l.closeUnfinished(octx); err != nil {
		return nil, err
	}
	if err := l.catchUpIndex(octx); err != nil {
		return nil, err
	}
	head, err := st.Head(octx)
	if err != nil {
		return nil, err
	}
	cps, err := st.Checkpoints(octx)
	if err != nil {
		return nil, err
	}
	l.head = head
	l.sinceCP = int(head.Seq)
	if len(cps) > 0 {
		l.sinceCP = int(head.Seq - cps[len(cps)-1].Seq)
	}
	l.lastCPTime = opts.now()
	go l.run()
	return l, nil
}

// newUUID returns a version 7 UUID (RFC 9562): 48 bits of Unix
// milliseconds, then random bits. Event ids are indexed; time-ordered ids
// land at the end of that index instead of on a random page, so a commit
// dirties one index page rather than one per record.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[6:]) // crypto/rand never fails on supported platforms
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// PublicKey returns the key that verifies checkpoints.
func (l *Log) PublicKey() ed25519.PublicKey { return l.signer.pub }

// Pending is an access whose intent is durable and whose completion is
// still due. Complete must be called exactly once, however the response
// ends.
type Pending struct {
	log  *Log
	id   string
	done atomic.Bool
}

// EventID is the AuditEvent id shared by the intent and its completion.
func (p *Pending) EventID() string { return p.id }

// Intent commits the intent record of a before returning. If it returns an
// error (always carrying fhir.ReasonAuditUnavailable), the caller must
// refuse the request with 503 and forward nothing. ctx may be the client's:
// the write is detached from its cancellation and bounded by
// Options.WriteTimeout.
func (l *Log) Intent(ctx context.Context, a *Access) (*Pending, error) {
	id := l.opts.newID()
	rec, err := l.record(KindIntent, id, a, PhaseIntent)
	if err != nil {
		return nil, err
	}
	if err := l.write(ctx, rec); err != nil {
		return nil, err
	}
	return &Pending{log: l, id: id}, nil
}

// Complete records the final AuditEvent of the access. It is durable when
// Complete returns nil; on error the intent stays open and is closed as
// incomplete at the next start.
func (p *Pending) Complete(ctx context.Context, a *Access) error {
	if p == nil || p.log == nil {
		return fhir.Errorf(fhir.ReasonAuditUnavailable, "no pending audit record")
	}
	if !p.done.CompareAndSwap(false, true) {
		return errors.New("audit: access already completed")
	}
	rec, err := p.log.record(KindEvent, p.id, a, PhaseComplete)
	if err != nil {
		return err
	}
	return p.log.writeJob(ctx, true, rec)
}

// Record writes the one-phase AuditEvent of an access that was never
// forwarded (refusals, authentication failures, audit reads), or a
// continuation event (a.Part > 0) of an access whose intent is durable. It
// is durable when Record returns nil. A continuation, like a completion,
// may wait up to lazyLinger to share the next commit.
func (l *Log) Record(ctx context.Context, a *Access) error {
	rec, err := l.record(KindEvent, l.opts.newID(), a, PhaseComplete)
	if err != nil {
		return err
	}
	return l.writeJob(ctx, a.Part > 0, rec)
}

func (l *Log) record(kind, id string, a *Access, phase string) (*Record, error) {
	if a == nil {
		return nil, fhir.Errorf(fhir.ReasonAuditUnavailable, "nothing to record")
	}
	now := l.opts.now().UTC()
	rec := &Record{Kind: kind, EventID: id, RequestID: a.RequestID, Source: l.opts.Source, Recorded: now}
	var err error
	if kind == KindIntent {
		rec.Body, err = encodeIntent(a, l.ec) // see intent.go: no AuditEvent until it is closed
	} else {
		ev := buildEvent(a, id, now, phase, l.ec)
		rec.Body, err = encodeEvent(&ev)  // MarshalJSON's bytes, without its reflection
		rec.Keys = indexKeys(refsOf(&ev)) // hashed here, beside the request, not in the writer
	}
	if err != nil {
		return nil, fhir.Wrap(fhir.ReasonAuditUnavailable, err, "the audit record cannot be encoded")
	}
	return rec, nil
}

// Ready reports whether the log can record: the writer runs and the store
// answers. Wire it into /readyz.
func (l *Log) Ready(ctx context.Context) error {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed && !l.opts.ReadOnly {
		return unavailable(errClosed)
	}
	if err := l.store.Ping(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// Close drains queued writes, writes a final checkpoint, flushes the sinks
// and closes the store. Writes after Close fail with audit-unavailable.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		return nil
	}
	l.shut = true
	wasClosed := l.closed
	l.closed = true
	l.mu.Unlock()
	if wasClosed { // read-only: no writer, no sinks running
		return l.store.Close()
	}
	close(l.stop)
	<-l.done
	var errs []error
	for _, s := range l.sinks {
		errs = append(errs, s.Close())
	}
	errs = append(errs, l.store.Close())
	return errors.Join(errs...)
}
