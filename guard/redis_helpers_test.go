package guard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisAddr is the shared Redis the tests use; FHIRWALL_REDIS_ADDR overrides.
func redisAddr() string {
	if a := os.Getenv("FHIRWALL_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// skipWithoutRedis skips (or, with FHIRWALL_REQUIRE_REDIS set, fails) a test
// that needs Redis when it is not available.
func skipWithoutRedis(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("FHIRWALL_REQUIRE_REDIS") != "" {
		tb.Fatalf("Redis required (FHIRWALL_REQUIRE_REDIS is set) but %s", why)
	}
	tb.Skipf("skipping: %s (set FHIRWALL_REQUIRE_REDIS=1 to make this a failure)", why)
}

// sharedRedis connects to the machine's Redis and gives the test a key
// prefix of its own, whose keys are deleted when the test ends.
func sharedRedis(tb testing.TB) (redis.UniversalClient, string) {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr(), DialTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		skipWithoutRedis(tb, fmt.Sprintf("Redis at %s is unreachable: %v", redisAddr(), err))
	}
	prefix := "fhirwall-test:" + randomHex(6) + ":"
	tb.Cleanup(func() {
		deleteKeys(tb, c, prefix)
		_ = c.Close()
	})
	return c, prefix
}

func deleteKeys(tb testing.TB, c redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		tb.Logf("cleanup scan: %v", err)
		return
	}
	for _, k := range keys {
		if err := c.Del(ctx, k).Err(); err != nil {
			tb.Logf("cleanup del: %v", err)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// privateRedis is a redis-server of the test's own, on a free port with its
// data in a temporary directory, that the test may stop and restart. The
// machine's shared Redis is never touched.
type privateRedis struct {
	tb    testing.TB
	port  int
	dir   string
	extra []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// startPrivateRedis starts the server with extra arguments, for example
// "--appendonly", "yes" for a server whose data survive a restart.
func startPrivateRedis(tb testing.TB, extra ...string) *privateRedis {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		skipWithoutRedis(tb, "redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	p := &privateRedis{tb: tb, port: port, dir: tb.TempDir(), extra: extra}
	p.start()
	tb.Cleanup(p.stop)
	return p
}

func (p *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *privateRedis) start() {
	p.tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	args := append([]string{
		"--port", strconv.Itoa(p.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", p.dir, "--logfile", filepath.Join(p.dir, "redis.log"),
	}, p.extra...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		p.tb.Fatalf("starting redis-server: %v", err)
	}
	p.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: p.addr(), MaxRetries: -1})
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
			p.tb.Fatalf("private redis-server on %s did not answer: %v\n%s", p.addr(), err, tailLines(string(log), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop shuts the server down with SIGTERM, which makes Redis flush its
// append-only file, and waits for it to exit.
func (p *privateRedis) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fakeClock is a settable clock shared by several guards.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond until it holds or the timeout passes, and returns how
// long it took.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			tb.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}
