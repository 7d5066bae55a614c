package guard

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fhirwall/fhirwall/fhir"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// fileBackend is n separate guards sharing one state file, as a gateway and
// the CLI would: only revocations are shared this way.
var fileBackend = backend{"statefile", func(t *testing.T, n int, opts Options) []*Guard {
	opts.StateFile = filepath.Join(t.TempDir(), "revocations.json")
	out := make([]*Guard, n)
	for i := range out {
		out[i] = newGuard(t, opts)
	}
	return out
}}

func TestStateFileReachesEveryInstance(t *testing.T) {
	// The same behavioural test as on Redis, through the file.
	t.Run(fileBackend.name, func(t *testing.T) {
		b := fileBackend
		ctx := context.Background()
		gs := b.guards(t, 3, Options{})
		if err := gs[0].Revoke(ctx, Revocation{Agent: "agent-a", Reason: "runaway loop", By: "admin-1"}); err != nil {
			t.Fatal(err)
		}
		wantReason(t, "revoking instance", gs[0].CheckRevoked(ctx, "agent-a", ""), fhir.ReasonAgentRevoked)
		waitAll(t, gs, "agent revocation", func(g *Guard) bool {
			return fhir.ReasonOf(g.CheckRevoked(ctx, "agent-a", "jti-1")) == fhir.ReasonAgentRevoked
		})
		if err := gs[1].Revoke(ctx, Revocation{Agent: "agent-b", JTI: "jti-9"}); err != nil {
			t.Fatal(err)
		}
		waitAll(t, gs, "token revocation", func(g *Guard) bool {
			return fhir.ReasonOf(g.CheckRevoked(ctx, "agent-b", "jti-9")) == fhir.ReasonTokenRevoked
		})
		for _, g := range gs {
			wantReason(t, "other agent", g.CheckRevoked(ctx, "agent-c", "jti-9"), "")
		}
		if err := gs[2].Restore(ctx, "agent-a", ""); err != nil {
			t.Fatal(err)
		}
		waitAll(t, gs, "restore", func(g *Guard) bool { return g.CheckRevoked(ctx, "agent-a", "jti-1") == nil })
		rs, err := gs[0].Revocations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].Agent != "agent-b" || rs[0].JTI != "jti-9" {
			t.Fatalf("Revocations = %+v", rs)
		}
	})
}

func TestStateFileSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "revocations.json")
	open := func() *Guard {
		g, err := New(ctx, Options{StateFile: path})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return g
	}

	g := open()
	at := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	for _, r := range []Revocation{
		{Agent: "agent-billing-07", Reason: "walking the patient table", By: "admin-1", At: at},
		{Agent: "agent-triage-02", JTI: "jti-42", Reason: "token leaked", By: "cli@host", At: at.Add(time.Minute)},
	} {
		if err := g.Revoke(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	_ = g.Close()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("state file mode = %v, want 0600", perm)
	}
	golden(t, "statefile.golden.json", path)

	g = open()
	wantReason(t, "after restart", g.CheckRevoked(ctx, "agent-billing-07", ""), fhir.ReasonAgentRevoked)
	wantReason(t, "token after restart", g.CheckRevoked(ctx, "agent-triage-02", "jti-42"), fhir.ReasonTokenRevoked)
	wantReason(t, "other token", g.CheckRevoked(ctx, "agent-triage-02", "jti-43"), "")
	rs, err := g.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Reason != "walking the patient table" || rs[0].By != "admin-1" || !rs[0].At.Equal(at) {
		t.Fatalf("Revocations after restart = %+v", rs)
	}
	if err := g.Restore(ctx, "agent-billing-07", ""); err != nil {
		t.Fatal(err)
	}
	_ = g.Close()

	g = open()
	defer g.Close()
	wantReason(t, "restored, after restart", g.CheckRevoked(ctx, "agent-billing-07", ""), "")
	wantReason(t, "token still revoked", g.CheckRevoked(ctx, "agent-triage-02", "jti-42"), fhir.ReasonTokenRevoked)
	if err := g.Ready(ctx); err != nil {
		t.Errorf("Ready = %v", err)
	}
}

// golden compares the file at path with testdata/name (rewritten with -update).
func golden(t *testing.T, name, path string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(want, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, exp) {
		t.Errorf("%s differs from %s:\n%s", path, want, got)
	}
}

func TestStateFileRefusesToStart(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		content string // written to the state file; "-" makes it a directory
	}{
		{"garbage", "not json"},
		{"empty", ""},
		{"truncated", `{"version":1,"revocations":[{"agent":"a"`},
		{"other version", `{"version":2,"revocations":[]}`},
		{"no version", `{"revocations":[]}`},
		{"unknown field", `{"version":1,"revocations":[],"extra":true}`},
		{"unknown entry field", `{"version":1,"revocations":[{"agent":"a","scope":"x"}]}`},
		{"trailing data", `{"version":1,"revocations":[]} {}`},
		{"empty agent", `{"version":1,"revocations":[{"agent":""}]}`},
		{"control char", `{"version":1,"revocations":[{"agent":"a\nb"}]}`},
		{"not an object", `[]`},
		{"a directory", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "revocations.json")
			var err error
			if tc.content == "-" {
				err = os.Mkdir(path, 0o700)
			} else {
				err = os.WriteFile(path, []byte(tc.content), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			if g, err := New(ctx, Options{StateFile: path}); err == nil {
				_ = g.Close()
				t.Fatalf("New started on a %s state file", tc.name)
			}
		})
	}

	t.Run("missing directory", func(t *testing.T) {
		if g, err := New(ctx, Options{StateFile: filepath.Join(t.TempDir(), "nope", "revocations.json")}); err == nil {
			_ = g.Close()
			t.Fatal("New started with a state file in a missing directory")
		}
	})
	t.Run("with redis", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		defer c.Close()
		if g, err := New(ctx, Options{Redis: c, StateFile: filepath.Join(t.TempDir(), "r.json")}); err == nil {
			_ = g.Close()
			t.Fatal("New accepted both Redis and StateFile")
		}
	})
	t.Run("missing file is empty", func(t *testing.T) {
		g := newGuard(t, Options{StateFile: filepath.Join(t.TempDir(), "revocations.json")})
		wantReason(t, "empty set", g.CheckRevoked(ctx, "a", ""), "")
	})
}

// A file that turns unreadable under a running gateway is an outage of the
// shared state: known revocations still refuse, and after LocalCacheTTL so
// does everyone else. It is never overwritten, and recovery is automatic.
func TestStateFileCorruptedWhileRunning(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "revocations.json")
	opts := Options{StateFile: path, RevocationPoll: 20 * time.Millisecond, LocalCacheTTL: 100 * time.Millisecond}
	g := newGuard(t, opts)
	if err := g.Revoke(ctx, Revocation{Agent: "bad"}); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * opts.LocalCacheTTL)
	wantReason(t, "known revocation", g.CheckRevoked(ctx, "bad", ""), fhir.ReasonAgentRevoked)
	wantReason(t, "healthy agent, unreadable file", g.CheckRevoked(ctx, "good", ""), ReasonUnavailable)
	if err := g.Ready(ctx); !errors.Is(err, ErrStateUnavailable) {
		t.Errorf("Ready = %v, want ErrStateUnavailable", err)
	}
	if err := g.Revoke(ctx, Revocation{Agent: "worse"}); !errors.Is(err, ErrNotPersisted) {
		t.Errorf("Revoke into a corrupt file = %v, want ErrNotPersisted", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "{oops" {
		t.Fatalf("the corrupt file was overwritten with %q", b)
	}
	if n := metricValue(t, g, "fhirwall_guard_state_file_errors_total", map[string]string{"op": "sync"}); n < 1 {
		t.Errorf("sync errors = %v", n)
	}

	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*Guard{g}, "recovery", func(g *Guard) bool { return g.Ready(ctx) == nil })
	wantReason(t, "healthy agent, repaired file", g.CheckRevoked(ctx, "good", ""), "")
	// The revocation made during the outage was kept and is now written.
	wantReason(t, "pending revocation", g.CheckRevoked(ctx, "worse", ""), fhir.ReasonAgentRevoked)
	g2 := newGuard(t, Options{StateFile: path})
	wantReason(t, "pending revocation, other instance", g2.CheckRevoked(ctx, "worse", ""), fhir.ReasonAgentRevoked)
}

// A revocation that cannot be written still stops the agent here, says so,
// and is written as soon as the file can be; a restore that cannot be
// written lifts nothing.
func TestStateFileUnwritable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		root    bool // works as root
		breakIt func(t *testing.T, dir, path string) (heal func())
	}{
		{"lock path is a directory", true, func(t *testing.T, dir, path string) func() {
			if err := os.Remove(path + ".lock"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(path+".lock", 0o700); err != nil {
				t.Fatal(err)
			}
			return func() { _ = os.Remove(path + ".lock") }
		}},
		{"read-only directory", false, func(t *testing.T, dir, path string) func() {
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			return func() { _ = os.Chmod(dir, 0o700) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.root && os.Geteuid() == 0 {
				t.Skip("root ignores directory permissions")
			}
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "revocations.json")
			g := newGuard(t, Options{StateFile: path, LocalCacheTTL: 5 * time.Second})
			if err := g.Revoke(ctx, Revocation{Agent: "first"}); err != nil {
				t.Fatal(err)
			}
			heal := tc.breakIt(t, dir, path)
			t.Cleanup(heal)

			err := g.Revoke(ctx, Revocation{Agent: "runaway", Reason: "disk full"})
			if !errors.Is(err, ErrNotPersisted) {
				t.Fatalf("Revoke = %v, want ErrNotPersisted", err)
			}
			wantReason(t, "unpersisted revocation", g.CheckRevoked(ctx, "runaway", ""), fhir.ReasonAgentRevoked)
			wantReason(t, "other agent", g.CheckRevoked(ctx, "healthy", ""), "")
			if err := g.Ready(ctx); !errors.Is(err, ErrNotPersisted) {
				t.Errorf("Ready = %v, want ErrNotPersisted", err)
			}
			if n := metricValue(t, g, "fhirwall_guard_revocations_unpersisted", nil); n != 1 {
				t.Errorf("unpersisted = %v, want 1", n)
			}
			if n := metricValue(t, g, "fhirwall_guard_state_file_errors_total", map[string]string{"op": "revoke"}); n != 1 {
				t.Errorf("revoke errors = %v, want 1", n)
			}
			if err := g.Restore(ctx, "first", ""); err == nil {
				t.Error("Restore succeeded without writing")
			}
			wantReason(t, "failed restore", g.CheckRevoked(ctx, "first", ""), fhir.ReasonAgentRevoked)
			// Polls keep the unpersisted revocation in force.
			time.Sleep(3 * DefaultRevocationPoll)
			wantReason(t, "unpersisted revocation after polls", g.CheckRevoked(ctx, "runaway", ""), fhir.ReasonAgentRevoked)
			if other, err := New(ctx, Options{StateFile: path}); err != nil {
				t.Fatal(err)
			} else {
				wantReason(t, "not in the file yet", other.CheckRevoked(ctx, "runaway", ""), "")
				_ = other.Close()
			}

			heal()
			waitAll(t, []*Guard{g}, "persisted after repair", func(g *Guard) bool { return g.Ready(ctx) == nil })
			g2 := newGuard(t, Options{StateFile: path})
			wantReason(t, "written after repair", g2.CheckRevoked(ctx, "runaway", ""), fhir.ReasonAgentRevoked)
			wantReason(t, "first", g2.CheckRevoked(ctx, "first", ""), fhir.ReasonAgentRevoked)
		})
	}
}

// Deleting the file under a running gateway must not lift its revocations.
func TestStateFileDeletedIsWrittenBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "revocations.json")
	g := newGuard(t, Options{StateFile: path})
	if err := g.Revoke(ctx, Revocation{Agent: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// The counter moves once the file is back in place.
	waitAll(t, []*Guard{g}, "write-back", func(g *Guard) bool {
		return metricValue(t, g, "fhirwall_guard_revocations_republished_total", nil) == 1
	})
	g2 := newGuard(t, Options{StateFile: path})
	wantReason(t, "after deletion", g2.CheckRevoked(ctx, "a", ""), fhir.ReasonAgentRevoked)
}

// Two guards revoking and restoring at the same time through one file lose
// nothing: the advisory lock serialises their read-modify-writes.
func TestStateFileConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "revocations.json")
	gs := []*Guard{newGuard(t, Options{StateFile: path}), newGuard(t, Options{StateFile: path})}
	const per = 15
	var wg sync.WaitGroup
	for i, g := range gs {
		for j := range per {
			wg.Go(func() {
				if err := g.Revoke(ctx, Revocation{Agent: fmt.Sprintf("agent-%d-%d", i, j)}); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	// Each lifts the other's even-numbered agents, concurrently.
	for i, g := range gs {
		for j := 0; j < per; j += 2 {
			wg.Go(func() {
				if err := g.Restore(ctx, fmt.Sprintf("agent-%d-%d", 1-i, j), ""); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	fresh := newGuard(t, Options{StateFile: path})
	for i := range gs {
		for j := range per {
			agent := fmt.Sprintf("agent-%d-%d", i, j)
			want := fhir.ReasonAgentRevoked
			if j%2 == 0 {
				want = ""
			}
			wantReason(t, agent, fresh.CheckRevoked(ctx, agent, ""), want)
		}
	}
}

// The CLI case for real: other processes revoke through the file while this
// one runs (and revokes too); this one sees theirs within the bound, and
// nobody's revocation is lost.
func TestStateFileOtherProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "revocations.json")
	g := newGuard(t, Options{StateFile: path})
	const procs, per = 2, 10
	var wg sync.WaitGroup
	errs := make([]error, procs)
	for p := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestStateFileHelperProcess$")
			cmd.Env = append(os.Environ(), "GUARD_HELPER_FILE="+path, "GUARD_HELPER_PREFIX=proc"+strconv.Itoa(p)+"-", "GUARD_HELPER_N="+strconv.Itoa(per))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[p] = fmt.Errorf("helper %d: %v\n%s", p, err, out)
			}
		})
	}
	for j := range per {
		if err := g.Revoke(ctx, Revocation{Agent: "local-" + strconv.Itoa(j)}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, []*Guard{g}, "other processes' revocations", func(g *Guard) bool {
		for p := range procs {
			for j := range per {
				if g.CheckRevoked(ctx, fmt.Sprintf("proc%d-%d", p, j), "") == nil {
					return false
				}
			}
		}
		return true
	})
	rs, err := g.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != (procs+1)*per {
		t.Fatalf("%d revocations in the file, want %d", len(rs), (procs+1)*per)
	}
}

// TestStateFileHelperProcess is the other process of
// TestStateFileOtherProcesses; it does nothing unless started by it.
func TestStateFileHelperProcess(t *testing.T) {
	path := os.Getenv("GUARD_HELPER_FILE")
	if path == "" {
		t.Skip("helper process only")
	}
	n, _ := strconv.Atoi(os.Getenv("GUARD_HELPER_N"))
	g := newGuard(t, Options{StateFile: path})
	for j := range n {
		if err := g.Revoke(context.Background(), Revocation{Agent: os.Getenv("GUARD_HELPER_PREFIX") + strconv.Itoa(j), By: "cli"}); err != nil {
			t.Fatal(err)
		}
	}
}
