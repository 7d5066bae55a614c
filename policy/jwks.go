package policy

// This file keeps one issuer's verification keys: loaded from a file once,
// or fetched from a JWKS URL and refreshed in the background, when they grow
// stale, and when a token names a key id we do not know. That last trigger
// is attacker-controlled, so every fetch passes through one gate that allows
// at most one fetch per minInterval, whatever the number of callers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const (
	authnMaxJWKSBytes = 1 << 20 // a JWKS is a few KiB; anything near this is not one
	authnMaxJWKSKeys  = 64      // bounds the work a kid-less token can cause
)

// authnKeySource is the key set of one issuer.
type authnKeySource struct {
	url, file   string
	algs        []jwa.SignatureAlgorithm // the issuer's allow-list
	client      *http.Client
	now         func() time.Time
	minInterval time.Duration
	interval    time.Duration

	snap atomic.Pointer[authnKeySnapshot]

	// sem is held by the one caller that may fetch; lastAttempt is only
	// touched while holding it.
	sem         chan struct{}
	lastAttempt time.Time
	errMu       sync.Mutex
	lastErr     error // the outcome of the last fetch, nil when it worked

	// base is cancelled by close; fetches run under it rather than under
	// the request that triggered them.
	base       context.Context
	cancelBase context.CancelFunc

	kicking atomic.Bool
	// life guards closed and every wg.Add, so no goroutine is added while
	// close waits for them.
	life    sync.Mutex
	closed  bool
	started bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// authnKeySnapshot is an immutable view of a key set.
type authnKeySnapshot struct {
	byKID    map[string][]authnKey
	all      []authnKey
	loadedAt time.Time
}

// candidates returns the keys a token with this kid and alg may be checked
// against. A token without kid is tried against every key of a matching
// type, never against a key whose type does not fit alg.
func (s *authnKeySnapshot) candidates(kid string, hasKID bool, alg jwa.SignatureAlgorithm) []authnKey {
	if s == nil {
		return nil
	}
	pool := s.all
	if hasKID {
		pool = s.byKID[kid]
	}
	var out []authnKey
	for _, k := range pool {
		if k.accepts(alg) {
			out = append(out, k)
		}
	}
	return out
}

func (ks *authnKeySource) loaded() bool { return ks.snap.Load() != nil }

// lastError is why no key set is loaded, for Ready.
func (ks *authnKeySource) lastError() error {
	if err := ks.fetchErr(); err != nil {
		return err
	}
	return errors.New("not fetched yet")
}

func (ks *authnKeySource) fetchErr() error {
	ks.errMu.Lock()
	defer ks.errMu.Unlock()
	return ks.lastErr
}

// keysFor returns the candidate keys for a token, fetching the key set
// again (within the minInterval bound) when none fits: that is how a key
// rotated in at the IdP is picked up without a restart.
func (ks *authnKeySource) keysFor(ctx context.Context, kid string, hasKID bool, alg jwa.SignatureAlgorithm) ([]authnKey, error) {
	snap := ks.snap.Load()
	if c := snap.candidates(kid, hasKID, alg); len(c) > 0 {
		if ks.url != "" && ks.now().Sub(snap.loadedAt) > ks.interval {
			ks.kick()
		}
		return c, nil
	}
	if ks.url == "" {
		return nil, nil
	}
	if err := ks.refresh(ctx, false); err != nil && !ks.loaded() {
		return nil, err
	}
	return ks.snap.Load().candidates(kid, hasKID, alg), nil
}

// refresh fetches the key set unless another fetch happened less than
// minInterval ago (force skips that check, for the periodic refresh). It
// waits for a fetch already in progress rather than starting a second one.
// A failed fetch keeps the previous key set.
func (ks *authnKeySource) refresh(ctx context.Context, force bool) error {
	if ks.url == "" {
		return nil
	}
	select {
	case ks.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-ks.sem }()
	now := ks.now()
	if !force && !ks.lastAttempt.IsZero() && now.Sub(ks.lastAttempt) < ks.minInterval {
		return ks.fetchErr()
	}
	ks.lastAttempt = now
	// The fetch outlives a cancelled request: otherwise a client that hangs
	// up could burn the interval's only fetch without completing it.
	fctx, cancel := context.WithTimeout(ks.base, authnFetchTimeout)
	defer cancel()
	snap, err := ks.fetch(fctx)
	if err == nil {
		snap.loadedAt = now
		ks.snap.Store(snap)
	}
	ks.errMu.Lock()
	ks.lastErr = err
	ks.errMu.Unlock()
	return err
}

// kick starts one asynchronous refresh when the key set is stale, without
// making the request that noticed it wait.
func (ks *authnKeySource) kick() {
	if !ks.kicking.CompareAndSwap(false, true) {
		return
	}
	ks.life.Lock()
	defer ks.life.Unlock()
	if ks.closed {
		// Authenticate keeps using the set it has.
		ks.kicking.Store(false)
		return
	}
	ks.wg.Add(1)
	go func() {
		defer ks.wg.Done()
		defer ks.kicking.Store(false)
		_ = ks.refresh(ks.base, false)
	}()
}

// start launches the background refresh of a jwks_url issuer: a first fetch
// at once, then every interval (every minInterval while no set is loaded).
func (ks *authnKeySource) start() {
	if ks.url == "" {
		return
	}
	ks.life.Lock()
	defer ks.life.Unlock()
	if ks.closed || ks.started {
		return
	}
	ks.started = true
	ks.wg.Add(1)
	go ks.loop()
}

func (ks *authnKeySource) loop() {
	defer ks.wg.Done()
	ctx := ks.base
	_ = ks.refresh(ctx, false)
	for {
		wait := ks.interval
		if !ks.loaded() {
			wait = ks.minInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ks.stop:
			t.Stop()
			return
		case <-t.C:
		}
		_ = ks.refresh(ctx, ks.loaded())
	}
}

func (ks *authnKeySource) close() {
	ks.life.Lock()
	if !ks.closed {
		ks.closed = true
		close(ks.stop)
		ks.cancelBase()
	}
	ks.life.Unlock()
	ks.wg.Wait()
}

func (ks *authnKeySource) fetch(ctx context.Context) (*authnKeySnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: fetch %s: %w", ks.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: fetch %s: status %d", ks.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, authnMaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks: read %s: %w", ks.url, err)
	}
	if len(body) > authnMaxJWKSBytes {
		return nil, fmt.Errorf("jwks: %s is larger than %d bytes", ks.url, authnMaxJWKSBytes)
	}
	snap, err := authnParseKeySet(body, ks.algs)
	if err != nil {
		return nil, fmt.Errorf("jwks: %s: %w", ks.url, err)
	}
	return snap, nil
}

func (ks *authnKeySource) loadFile() error {
	body, err := os.ReadFile(ks.file)
	if err != nil {
		return fmt.Errorf("jwks_file: %w", err)
	}
	if len(body) > authnMaxJWKSBytes {
		return fmt.Errorf("jwks_file %s is larger than %d bytes", ks.file, authnMaxJWKSBytes)
	}
	snap, err := authnParseKeySet(body, ks.algs)
	if err != nil {
		return fmt.Errorf("jwks_file %s: %w", ks.file, err)
	}
	snap.loadedAt = ks.now()
	ks.snap.Store(snap)
	return nil
}

// authnParseKeySet keeps the keys of a JWK Set that can verify under the
// allow-list. Entries that cannot (unknown types, symmetric keys,
// encryption keys, weak RSA) are skipped, not fatal: IdPs publish such
// keys for other uses. A set with no usable key is an error.
func authnParseKeySet(body []byte, algs []jwa.SignatureAlgorithm) (*authnKeySnapshot, error) {
	set, err := jwk.Parse(body, jwk.WithIgnoreParseError(true))
	if err != nil {
		return nil, fmt.Errorf("parse key set: %w", err)
	}
	snap := &authnKeySnapshot{byKID: make(map[string][]authnKey)}
	var skipped []error
	for i := 0; i < set.Len() && len(snap.all) < authnMaxJWKSKeys; i++ {
		key, ok := set.Key(i)
		if !ok {
			continue
		}
		k, err := authnUsableKey(key, algs)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		snap.all = append(snap.all, k)
		if k.hasKID {
			snap.byKID[k.kid] = append(snap.byKID[k.kid], k)
		}
	}
	if len(snap.all) == 0 {
		return nil, fmt.Errorf("no key usable with the allowed algorithms: %w", errors.Join(skipped...))
	}
	return snap, nil
}
