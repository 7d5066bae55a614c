package guard

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// Revocation is one entry of the kill switch: a whole agent (JTI empty) or
// one of its tokens.
type Revocation struct {
	Agent  string    `json:"agent"`
	JTI    string    `json:"jti,omitempty"`
	Reason string    `json:"reason,omitempty"` // free text for admins; never PHI or a token
	By     string    `json:"by,omitempty"`     // the admin principal or "fhirwall/guard"
	At     time.Time `json:"at"`
}

// maxIDLen bounds agent ids and jtis so a hostile value cannot bloat Redis.
const maxIDLen = 512

func validID(what, s string, required bool) error {
	switch {
	case s == "" && required:
		return fmt.Errorf("guard: %s is empty", what)
	case len(s) > maxIDLen:
		return fmt.Errorf("guard: %s is longer than %d bytes", what, maxIDLen)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("guard: %s contains a control character", what)
	}
	return nil
}

// tokenKey identifies a revoked token; a struct key keeps lookups free of
// allocation.
type tokenKey struct{ agent, jti string }

// revSet is an immutable snapshot of the revocation set.
type revSet struct {
	agents  map[string]Revocation
	tokens  map[tokenKey]Revocation
	version string // Redis version token the snapshot was read at
}

func newRevSet(rs []Revocation, version string) *revSet {
	s := &revSet{agents: map[string]Revocation{}, tokens: map[tokenKey]Revocation{}, version: version}
	for _, r := range rs {
		s.put(r)
	}
	return s
}

func (s *revSet) put(r Revocation) {
	if r.JTI == "" {
		s.agents[r.Agent] = r
	} else {
		s.tokens[tokenKey{r.Agent, r.JTI}] = r
	}
}

func (s *revSet) clone() *revSet {
	return &revSet{agents: maps.Clone(s.agents), tokens: maps.Clone(s.tokens), version: s.version}
}

func (s *revSet) list() []Revocation {
	out := make([]Revocation, 0, len(s.agents)+len(s.tokens))
	for _, r := range s.agents {
		out = append(out, r)
	}
	for _, r := range s.tokens {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Revocation) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		if c := strings.Compare(a.Agent, b.Agent); c != 0 {
			return c
		}
		return strings.Compare(a.JTI, b.JTI)
	})
	return out
}

// Revoke switches an agent (r.JTI empty) or one token off on every replica.
// With Redis the revocation is stored without expiry and reaches every
// replica within RevocationPoll; this replica applies it before Revoke
// returns. In memory it lasts for the life of the process, or, with a
// StateFile, until restored. r.At defaults to now. An error means the
// revocation was not stored and must be retried; with a StateFile, an error
// wrapping ErrNotPersisted means it is nonetheless in force in this process
// (a kill switch must never be weakened by a full disk), and this guard
// keeps trying to write it at every poll.
func (g *Guard) Revoke(ctx context.Context, r Revocation) error {
	if err := validID("agent", r.Agent, true); err != nil {
		return err
	}
	if err := validID("jti", r.JTI, false); err != nil {
		return err
	}
	if r.At.IsZero() {
		r.At = time.Now().UTC()
	}
	if g.file != nil {
		if err := g.fileChange(ctx, "revoke", func(s *revSet) { s.put(r) }, &r); err != nil {
			return fmt.Errorf("guard: storing revocation in %s (in force in this process only): %w: %w", g.file.path, ErrNotPersisted, err)
		}
		return nil
	}
	if g.rdb != nil {
		ctx, cancel := g.opCtx(ctx)
		defer cancel()
		if err := g.redisRevoke(ctx, r); err != nil {
			g.m.redisErrors.WithLabelValues("revoke").Inc()
			return fmt.Errorf("guard: storing revocation: %w", err)
		}
	}
	g.applyLocal(func(s *revSet) { s.put(r) })
	return nil
}

// Restore lifts a revocation: the agent's (jti empty) or one token's. Token
// revocations of an agent are not lifted by restoring the agent. Restoring
// what is not revoked is not an error. An error means nothing was lifted
// anywhere (with a StateFile: the file could not be written, and the
// revocation stays in force here too).
func (g *Guard) Restore(ctx context.Context, agent, jti string) error {
	if err := validID("agent", agent, true); err != nil {
		return err
	}
	if err := validID("jti", jti, false); err != nil {
		return err
	}
	lift := func(s *revSet) {
		if jti == "" {
			delete(s.agents, agent)
		} else {
			delete(s.tokens, tokenKey{agent, jti})
		}
	}
	if g.file != nil {
		if err := g.fileChange(ctx, "restore", lift, nil); err != nil {
			return fmt.Errorf("guard: lifting revocation in %s: %w", g.file.path, err)
		}
		return nil
	}
	if g.rdb != nil {
		ctx, cancel := g.opCtx(ctx)
		defer cancel()
		if err := g.redisRestore(ctx, agent, jti); err != nil {
			g.m.redisErrors.WithLabelValues("restore").Inc()
			return fmt.Errorf("guard: lifting revocation: %w", err)
		}
	}
	g.applyLocal(lift)
	return nil
}

// Revocations lists the revocations in force, oldest first. With Redis it
// reads Redis (the authority), not the local snapshot; with a StateFile it
// rereads the file first (and lists, too, revocations in force here that
// could not be written yet).
func (g *Guard) Revocations(ctx context.Context) ([]Revocation, error) {
	if g.file != nil {
		if err := g.fileSync(ctx); err != nil {
			return nil, fmt.Errorf("guard: listing revocations: %w", err)
		}
		return g.rev.Load().list(), nil
	}
	if g.rdb == nil {
		return g.rev.Load().list(), nil
	}
	ctx, cancel := g.opCtx(ctx)
	defer cancel()
	rs, _, err := g.redisLoadRevocations(ctx)
	if err != nil {
		g.m.redisErrors.WithLabelValues("revocations").Inc()
		return nil, fmt.Errorf("guard: listing revocations: %w", err)
	}
	return newRevSet(rs, "").list(), nil
}

// CheckRevoked returns nil if neither the agent nor the token jti is
// revoked, else an *fhir.Error with agent-revoked or token-revoked.
//
// Fail closed: a revocation known locally refuses whatever its age; when the
// local snapshot is older than LocalCacheTTL (Redis or the StateFile
// unreadable) every agent is refused with ReasonUnavailable, since a
// revocation may have been made that this replica cannot see. The check
// never calls Redis or reads the file and does not allocate on the pass
// path.
func (g *Guard) CheckRevoked(ctx context.Context, agent, jti string) error {
	s := g.rev.Load()
	if _, ok := s.agents[agent]; ok {
		return g.refuse(fhir.Errorf(fhir.ReasonAgentRevoked, "agent %q has been revoked", agent))
	}
	if jti != "" {
		if _, ok := s.tokens[tokenKey{agent, jti}]; ok {
			return g.refuse(fhir.Errorf(fhir.ReasonTokenRevoked, "this token has been revoked"))
		}
	}
	if g.shared() {
		if age := g.cacheAge(); age > g.opts.LocalCacheTTL {
			g.m.refusals.WithLabelValues(string(ReasonUnavailable)).Inc()
			return fhir.Wrap(ReasonUnavailable,
				fmt.Errorf("%w: revocation set is %v old", ErrStateUnavailable, age.Round(time.Millisecond)),
				"the gateway cannot confirm the agent is not revoked; retry shortly")
		}
	}
	return nil
}

// cacheAge is how long ago the revocation set was last read from Redis or
// the state file.
func (g *Guard) cacheAge() time.Duration {
	if !g.shared() {
		return 0
	}
	return time.Duration(g.monoNow() - g.syncedAt.Load())
}

// applyLocal changes the snapshot copy-on-write. The version is cleared so
// the next poll rereads Redis, and revGen tells a poll already in flight
// that its result predates this change.
func (g *Guard) applyLocal(change func(*revSet)) {
	g.revMu.Lock()
	defer g.revMu.Unlock()
	s := g.rev.Load().clone()
	change(s)
	s.version = ""
	g.rev.Store(s)
	g.revGen++
}

// syncRevocations refreshes the snapshot from Redis: a cheap version read,
// and the whole set only when the version changed.
func (g *Guard) syncRevocations(ctx context.Context) error {
	g.revMu.Lock()
	gen, cur := g.revGen, g.rev.Load()
	g.revMu.Unlock()

	ctx, cancel := g.opCtx(ctx)
	defer cancel()
	started := g.monoNow()
	ver, err := g.rdb.Get(ctx, g.revVersionKey()).Result()
	if err != nil && !isNil(err) {
		g.m.redisErrors.WithLabelValues("sync").Inc()
		g.redisUp.Store(false)
		return err
	}
	g.redisUp.Store(true)
	if ver != "" && ver == cur.version {
		g.syncedAt.Store(started)
		return nil
	}
	if ver == "" && len(cur.agents)+len(cur.tokens) > 0 {
		// Redis lost the set (restarted without persistence, flushed,
		// evicted): a revocation must not be lifted by an accident, so
		// publish what this replica knows again. This can bring back a
		// revocation lifted while this replica was cut off; an admin
		// restores it again, which is the safe side to err on.
		if err := g.redisRepublish(ctx, cur); err != nil {
			g.m.redisErrors.WithLabelValues("sync").Inc()
			g.redisUp.Store(false)
			return err
		}
		g.m.republished.Inc()
	}
	rs, ver, err := g.redisLoadRevocations(ctx)
	if err != nil {
		g.m.redisErrors.WithLabelValues("sync").Inc()
		g.redisUp.Store(false)
		return err
	}
	g.revMu.Lock()
	defer g.revMu.Unlock()
	if g.revGen != gen {
		// A local change raced this read; the next poll rereads, and until
		// then the snapshot's age stays honest.
		return nil
	}
	g.rev.Store(newRevSet(rs, ver))
	g.syncedAt.Store(started)
	return nil
}

func (g *Guard) pollLoop() {
	defer close(g.done)
	t := time.NewTicker(g.opts.RevocationPoll)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			// Failures are counted in metrics; staleness shows in cacheAge.
			if g.file != nil {
				_ = g.fileSync(context.Background())
			} else {
				_ = g.syncRevocations(context.Background())
			}
		}
	}
}
