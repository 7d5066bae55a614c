package guard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fhirwall/fhirwall/fhir"
)

// ReasonUnavailable is the reason carried by every refusal caused by the
// shared state being unreachable (Redis down beyond the local cache window):
// guard-unavailable, answered with 503. Callers can also test
// errors.Is(err, ErrStateUnavailable).
const ReasonUnavailable = fhir.ReasonGuardUnavailable

// ErrStateUnavailable is wrapped by every refusal whose cause is that the
// guard could not reach or trust its shared state.
var ErrStateUnavailable = errors.New("guard: shared state unavailable")

// Defaults applied by New to zero Options fields.
const (
	DefaultLocalCacheTTL  = time.Second
	DefaultRevocationPoll = 250 * time.Millisecond
	DefaultTimeout        = 500 * time.Millisecond
	DefaultKeyPrefix      = "fhirwall:"
)

// patientWindow is the sliding window of the distinct-patient budget and
// bulkWindow the rolling window of the bulk-call cap.
const (
	patientWindow = time.Hour
	bulkWindow    = 24 * time.Hour
)

// Options configures a Guard. The zero value is a valid in-memory guard.
type Options struct {
	// Redis is the shared store; nil keeps all state in this process, which
	// is only correct for a single instance. The caller owns the client:
	// Close does not close it.
	Redis redis.UniversalClient

	// LocalCacheTTL is how long after the last successful synchronisation
	// with Redis the local copy of the revocation set is trusted. Within it,
	// healthy agents keep working through a Redis blip; beyond it, every
	// agent is refused. It also bounds how late a revocation made on another
	// replica during an outage can be seen here. At least two
	// RevocationPoll periods; default 1s.
	LocalCacheTTL time.Duration

	// RevocationPoll is how often each replica refreshes its revocation set
	// from Redis. It must not exceed 500ms, so that a revocation takes
	// effect on every replica within a second. Default 250ms.
	RevocationPoll time.Duration

	// Timeout bounds every Redis call made for a request, whatever the
	// caller's context says, so a hung Redis cannot hold requests. Default
	// 500ms.
	Timeout time.Duration

	// FailOpenLimits, when set, lets the rate limit fall back to a
	// per-replica in-memory limit when Redis cannot be reached, instead of
	// refusing. It never applies to revocation, the patient budget or the
	// bulk-call cap, which always fail closed.
	FailOpenLimits bool

	// AutoRevokeOnBudget revokes an agent (on every replica) the first time
	// it is refused for exceeding its patient budget.
	AutoRevokeOnBudget bool

	// OnBudgetExceeded, if set, is called synchronously every time an agent
	// is refused by a blast-radius cap, for example to raise an audit event:
	// reason is patient-budget for the distinct-patient budget and
	// rate-limited for the bulk-call cap. It runs on the request's path and
	// must not block for long.
	OnBudgetExceeded func(ctx context.Context, agent string, reason fhir.Reason)

	// Now is the clock of the limit windows. Nil means the Redis server's
	// clock on Redis (so replicas with skewed clocks agree) and time.Now in
	// memory. Tests set it to move time. The revocation cache age always
	// uses this process's monotonic clock.
	Now func() time.Time

	// StateFile, without Redis, is a file that keeps the revocation set
	// across restarts and lets another process (the CLI, through its own
	// Guard with the same StateFile) revoke and restore in the running one.
	// Every Revoke and Restore writes the whole set there before returning
	// (JSON, mode 0600, replaced atomically with fsync, under an advisory
	// lock on StateFile+".lock" so concurrent writers never lose each
	// other's changes); New loads it (a missing file is an empty set; an
	// unreadable or corrupt one is an error); every Guard rereads it every
	// RevocationPoll. If it cannot be read for longer than LocalCacheTTL,
	// CheckRevoked refuses every agent, as with Redis. Rate, patient-budget
	// and bulk-call state is never written: it restarts empty. Its directory
	// must exist. Setting it together with Redis is an error: Redis is then
	// the persistent, shared store.
	StateFile string

	// KeyPrefix starts every Redis key, so several deployments can share a
	// Redis. It must not contain '{' or '}'. Default "fhirwall:".
	KeyPrefix string
}

// Guard enforces the guardrails. It is safe for concurrent use; create one
// per process with New and stop it with Close.
type Guard struct {
	opts   Options
	rdb    redis.UniversalClient // nil: in-memory
	file   *stateFile            // nil unless Options.StateFile is set
	mem    *memState             // always present: the in-memory backend, and the fail-open fallback
	m      *metrics
	bootID string // makes bulk-call members unique across replicas

	// rev is the current revocation snapshot; revMu serialises writers.
	rev      atomic.Pointer[revSet]
	revMu    sync.Mutex
	revGen   uint64       // bumped by every local change, under revMu
	syncedAt atomic.Int64 // monotonic nanoseconds (since start) of the last good sync
	// redisUp is the poller's verdict on Redis: while it is false, limit
	// calls fail at once instead of each waiting for Timeout.
	redisUp atomic.Bool
	start   time.Time

	seq atomic.Uint64

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New validates opts, applies defaults and starts the guard. With Redis or a
// StateFile it loads the revocation set once before returning (an error if
// Redis cannot be reached or the file cannot be read: a replica must not
// start without knowing who is revoked) and then refreshes it every
// RevocationPoll until Close.
func New(ctx context.Context, opts Options) (*Guard, error) {
	if opts.LocalCacheTTL == 0 {
		opts.LocalCacheTTL = DefaultLocalCacheTTL
	}
	if opts.RevocationPoll == 0 {
		opts.RevocationPoll = DefaultRevocationPoll
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	switch {
	case opts.LocalCacheTTL < 0:
		return nil, fmt.Errorf("guard: LocalCacheTTL %v is negative", opts.LocalCacheTTL)
	case opts.RevocationPoll < 0 || opts.RevocationPoll > 500*time.Millisecond:
		return nil, fmt.Errorf("guard: RevocationPoll %v is outside (0, 500ms]: revocation must reach every replica within a second", opts.RevocationPoll)
	case opts.LocalCacheTTL < 2*opts.RevocationPoll:
		return nil, fmt.Errorf("guard: LocalCacheTTL %v is shorter than two RevocationPoll periods (%v): healthy agents would be refused between polls", opts.LocalCacheTTL, opts.RevocationPoll)
	case opts.Timeout < 0:
		return nil, fmt.Errorf("guard: Timeout %v is negative", opts.Timeout)
	case strings.ContainsAny(opts.KeyPrefix, "{}"):
		return nil, fmt.Errorf("guard: KeyPrefix %q contains a brace, which would break Redis cluster hash tags", opts.KeyPrefix)
	case opts.StateFile != "" && opts.Redis != nil:
		return nil, errors.New("guard: StateFile and Redis are both set: with Redis, revocations persist in Redis and replicas share them there")
	}
	g := &Guard{
		opts:   opts,
		rdb:    opts.Redis,
		mem:    newMemState(),
		bootID: newBootID(),
		start:  time.Now(),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	g.rev.Store(newRevSet(nil, ""))
	g.m = newMetrics(g)
	switch {
	case g.rdb != nil:
		if err := g.syncRevocations(ctx); err != nil {
			return nil, fmt.Errorf("guard: loading the revocation set: %w", err)
		}
	case opts.StateFile != "":
		f, err := newStateFile(opts.StateFile)
		if err != nil {
			return nil, err
		}
		if err := f.load(); err != nil {
			return nil, fmt.Errorf("guard: loading the revocation set: %w", err)
		}
		g.file = f
		g.rev.Store(f.onDisk)
		g.syncedAt.Store(g.monoNow())
	default:
		close(g.done)
		return g, nil
	}
	go g.pollLoop()
	return g, nil
}

// Close stops the background synchronisation; it does not close
// Options.Redis. After Close the revocation set is no longer refreshed, so
// with Redis or a StateFile CheckRevoked refuses every agent once
// LocalCacheTTL has passed.
func (g *Guard) Close() error {
	g.once.Do(func() {
		if g.shared() {
			close(g.stop)
		}
	})
	<-g.done
	return nil
}

// Ready reports whether the guard can enforce everything it is configured
// for: always nil in memory; with Redis, nil only when Redis answers a PING
// and the local revocation set is fresh (younger than LocalCacheTTL); with a
// StateFile, nil only when the file was read within LocalCacheTTL and every
// revocation in force is written in it (else an error wrapping
// ErrNotPersisted: a restart would lose it).
func (g *Guard) Ready(ctx context.Context) error {
	if g.file != nil {
		if age := g.cacheAge(); age > g.opts.LocalCacheTTL {
			return fmt.Errorf("guard: %s last read %v ago (limit %v): %w", g.file.path, age.Round(time.Millisecond), g.opts.LocalCacheTTL, ErrStateUnavailable)
		}
		if n := g.unpersisted(); n > 0 {
			return fmt.Errorf("guard: %d revocation(s) in force but not yet written to %s: %w", n, g.file.path, ErrNotPersisted)
		}
		return nil
	}
	if g.rdb == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	if err := g.rdb.Ping(ctx).Err(); err != nil {
		g.m.redisErrors.WithLabelValues("ping").Inc()
		return fmt.Errorf("guard: redis ping: %w", err)
	}
	if age := g.cacheAge(); age > g.opts.LocalCacheTTL {
		return fmt.Errorf("guard: revocation set is %v old (limit %v): %w", age.Round(time.Millisecond), g.opts.LocalCacheTTL, ErrStateUnavailable)
	}
	return nil
}

// shared reports whether the revocation set is synchronised from outside
// the process (Redis or the state file), and so can go stale.
func (g *Guard) shared() bool { return g.rdb != nil || g.file != nil }

// opCtx bounds a Redis call by Options.Timeout.
func (g *Guard) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.opts.Timeout)
}

// nowMicros is the time argument of the Lua scripts: 0 tells the script to
// use the Redis server clock.
func (g *Guard) nowMicros() int64 {
	if g.opts.Now == nil {
		return 0
	}
	return g.opts.Now().UnixMicro()
}

// now is the clock of the in-memory limit windows.
func (g *Guard) now() time.Time {
	if g.opts.Now == nil {
		return time.Now()
	}
	return g.opts.Now()
}

// monoNow is nanoseconds since the guard started on the monotonic clock.
func (g *Guard) monoNow() int64 { return int64(time.Since(g.start)) }

// errRedisDown stands for the Redis error while the poller finds Redis
// unreachable.
var errRedisDown = errors.New("redis unreachable at the last revocation poll")

// redisCall runs a limit operation against Redis under Options.Timeout, or
// fails at once while the poller finds Redis down.
func (g *Guard) redisCall(ctx context.Context, call func(context.Context) error) error {
	if !g.redisUp.Load() {
		return errRedisDown
	}
	ctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	return call(ctx)
}

// unavailable builds the fail-closed refusal for a Redis failure during op.
func (g *Guard) unavailable(op string, err error) *fhir.Error {
	g.m.redisErrors.WithLabelValues(op).Inc()
	g.m.refusals.WithLabelValues(string(ReasonUnavailable)).Inc()
	return fhir.Wrap(ReasonUnavailable, fmt.Errorf("%w: %s: %w", ErrStateUnavailable, op, err),
		"the gateway cannot reach its shared guard state; retry shortly")
}

// refuse counts a refusal and returns it.
func (g *Guard) refuse(e *fhir.Error) *fhir.Error {
	g.m.refusals.WithLabelValues(string(e.Reason)).Inc()
	return e
}
