package guard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// The state file is how a single instance without Redis keeps its kill
// switch across restarts, and how a second process (the CLI) reaches the
// running one: every Guard with the same StateFile writes the whole
// revocation set there, atomically and under an advisory lock, and polls it
// every RevocationPoll. Limit state (rate, patient budget, bulk calls) is
// never written: it restarts empty with the process.

// ErrNotPersisted is wrapped by the error of a Revoke that is in force in
// this process but could not be written to Options.StateFile. The guard
// retries the write at every poll until it succeeds; if the process stops
// first, the revocation is lost and must be made again.
var ErrNotPersisted = errors.New("guard: revocation not persisted")

// stateFormat is the version field of the state file; a file of any other
// version is refused rather than half understood.
const stateFormat = 1

// maxStateFile bounds what is read: a revocation is ~200 bytes, so this is
// hundreds of thousands of them, and anything larger is not ours.
const maxStateFile = 64 << 20

// fileLockWait bounds how long a Revoke or Restore waits for another
// process holding the lock (each holder does one read, write and two
// fsyncs). A poll waits at most Options.Timeout.
const fileLockWait = 2 * time.Second

// stateDoc is the file's JSON document.
type stateDoc struct {
	Version     int          `json:"version"`
	Revocations []Revocation `json:"revocations"`
}

// stateFile is a Guard's view of Options.StateFile.
type stateFile struct {
	path     string
	lockPath string

	// mu serialises this process's reads and writes of the file together
	// with the snapshot updates that follow them, so a poll can never store
	// a set older than one a Revoke has just stored.
	mu sync.Mutex
	// onDisk is the set the file held at the last read or write, and sum
	// the SHA-256 of those bytes: a poll parses only when the bytes change.
	// Content, not mtime, is the test, because mtime moves in clock ticks
	// and a rename can reuse an inode, so two quick writes of the same size
	// can look identical to stat.
	onDisk *revSet
	sum    [sha256.Size]byte
	// pending holds revocations in force here that the file does not hold
	// yet, because their write failed; every poll and every later change
	// writes them too.
	pending map[tokenKey]Revocation
	// pendingN is len(pending), readable without mu by Ready and metrics,
	// which must not wait behind a slow fsync.
	pendingN atomic.Int64
}

func newStateFile(path string) (*stateFile, error) {
	if !stateFileSupported {
		return nil, errors.New("guard: StateFile needs advisory file locks, which this platform lacks")
	}
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("guard: StateFile directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("guard: StateFile directory %s is not a directory", dir)
	}
	return &stateFile{
		path:     path,
		lockPath: path + ".lock",
		onDisk:   newRevSet(nil, ""),
		pending:  map[tokenKey]Revocation{},
	}, nil
}

// read returns the file's bytes; exists is false (and err nil) when there is
// no file, which stands for an empty set.
func (f *stateFile) read() (data []byte, exists bool, err error) {
	fh, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer fh.Close()
	data, err = io.ReadAll(io.LimitReader(fh, maxStateFile+1))
	if err != nil {
		return nil, true, err
	}
	if len(data) > maxStateFile {
		return nil, true, fmt.Errorf("%s is larger than %d bytes", f.path, maxStateFile)
	}
	return data, true, nil
}

// decodeState parses the file strictly: an unknown field, another version,
// trailing data or an invalid entry is an error, never a partial set.
func decodeState(data []byte) (*revSet, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc stateDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a revocation state file: %w", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return nil, errors.New("not a revocation state file: data after the document")
	}
	if doc.Version != stateFormat {
		return nil, fmt.Errorf("revocation state file version %d, want %d", doc.Version, stateFormat)
	}
	for i, r := range doc.Revocations {
		if err := validID("agent", r.Agent, true); err != nil {
			return nil, fmt.Errorf("revocation %d: %w", i, err)
		}
		if err := validID("jti", r.JTI, false); err != nil {
			return nil, fmt.Errorf("revocation %d: %w", i, err)
		}
	}
	return newRevSet(doc.Revocations, ""), nil
}

func encodeState(s *revSet) ([]byte, error) {
	data, err := json.MarshalIndent(stateDoc{Version: stateFormat, Revocations: s.list()}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// load reads the file for New: missing is an empty set, anything unreadable
// or corrupt is an error, since the gateway must not start without knowing
// who is revoked.
func (f *stateFile) load() error {
	data, exists, err := f.read()
	if err != nil {
		return err
	}
	if !exists {
		return nil
	}
	s, err := decodeState(data)
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	f.onDisk, f.sum = s, sha256.Sum256(data)
	return nil
}

// update is one read-modify-write of the file under the advisory lock, so
// that concurrent writers in other processes never lose each other's
// changes. modify changes the set read from the file (empty if there is
// none; exists tells which). The caller holds f.mu.
func (f *stateFile) update(ctx context.Context, wait time.Duration, modify func(s *revSet, exists bool)) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	unlock, err := lockFile(ctx, f.lockPath)
	if err != nil {
		return fmt.Errorf("locking %s: %w", f.lockPath, err)
	}
	defer unlock()
	data, exists, err := f.read()
	if err != nil {
		return err
	}
	s := newRevSet(nil, "")
	if exists {
		if s, err = decodeState(data); err != nil {
			// Never overwrite what cannot be read: it may hold revocations.
			return fmt.Errorf("%s: %w", f.path, err)
		}
	}
	modify(s, exists)
	if data, err = encodeState(s); err != nil {
		return err
	}
	if err := writeAtomic(f.path, data); err != nil {
		return err
	}
	f.onDisk, f.sum = s, sha256.Sum256(data)
	clear(f.pending) // modify always writes them; see fileChange and fileSync
	f.pendingN.Store(0)
	return nil
}

// writeAtomic replaces path with data so that a reader (or a crash) sees
// either the old file or the new one, never a mix: a temporary file in the
// same directory, fsync, rename over path, fsync of the directory so the
// rename itself is durable.
func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// withPending is s plus the revocations not yet written.
func (f *stateFile) withPending(s *revSet) *revSet {
	if len(f.pending) == 0 {
		return s
	}
	out := s.clone()
	for _, r := range f.pending {
		out.put(r)
	}
	return out
}

// fileChange is Revoke and Restore with a StateFile: change is applied to
// the file (with any pending revocations) and then to this process. If the
// write fails and keep is set (a revocation), keep is put in force here all
// the same and remembered as pending: a kill switch that cannot be written
// down must still stop the agent. A failed Restore changes nothing.
func (g *Guard) fileChange(ctx context.Context, op string, change func(*revSet), keep *Revocation) error {
	f := g.file
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.update(ctx, fileLockWait, func(s *revSet, _ bool) {
		for _, r := range f.pending {
			s.put(r)
		}
		change(s)
	})
	if err != nil {
		g.m.fileErrors.WithLabelValues(op).Inc()
		if keep != nil {
			f.pending[tokenKey{keep.Agent, keep.JTI}] = *keep
			f.pendingN.Store(int64(len(f.pending)))
			g.storeRevSet(f.withPending(g.rev.Load()))
		}
		return err
	}
	g.storeRevSet(f.onDisk)
	g.syncedAt.Store(g.monoNow())
	return nil
}

// fileSync is the poll: reread the file, parse it only if its bytes
// changed, retry pending writes, and put back a file that vanished while it
// held revocations (deleting the file must not lift them; Restore does).
// A read or parse failure leaves the snapshot as it was and lets it age, so
// CheckRevoked fails closed after LocalCacheTTL.
func (g *Guard) fileSync(ctx context.Context) error {
	f := g.file
	f.mu.Lock()
	defer f.mu.Unlock()
	started := g.monoNow()
	data, exists, err := f.read()
	if err != nil {
		g.m.fileErrors.WithLabelValues("sync").Inc()
		return err
	}
	sum := sha256.Sum256(data)
	switch {
	case !exists:
		if len(f.onDisk.agents)+len(f.onDisk.tokens) == 0 {
			break
		}
		known := f.onDisk
		err := f.update(ctx, g.opts.Timeout, func(s *revSet, exists bool) {
			if !exists {
				for _, r := range known.list() {
					s.put(r)
				}
			}
			for _, r := range f.pending {
				s.put(r)
			}
		})
		if err != nil {
			g.m.fileErrors.WithLabelValues("republish").Inc()
			return fmt.Errorf("putting back the vanished %s: %w", f.path, err)
		}
		g.m.republished.Inc()
	case sum != f.sum:
		s, err := decodeState(data)
		if err != nil {
			g.m.fileErrors.WithLabelValues("sync").Inc()
			return fmt.Errorf("%s: %w", f.path, err)
		}
		f.onDisk, f.sum = s, sum
	}
	if len(f.pending) > 0 {
		err := f.update(ctx, g.opts.Timeout, func(s *revSet, _ bool) {
			for _, r := range f.pending {
				s.put(r)
			}
		})
		if err != nil {
			g.m.fileErrors.WithLabelValues("persist").Inc() // still pending; the file was read, so the snapshot is fresh
		}
	}
	g.storeRevSet(f.withPending(f.onDisk))
	g.syncedAt.Store(started)
	return nil
}

// storeRevSet replaces the snapshot.
func (g *Guard) storeRevSet(s *revSet) {
	g.revMu.Lock()
	defer g.revMu.Unlock()
	g.rev.Store(s)
	g.revGen++
}

// unpersisted counts revocations in force here but not yet in the file.
func (g *Guard) unpersisted() int {
	if g.file == nil {
		return 0
	}
	return int(g.file.pendingN.Load())
}
