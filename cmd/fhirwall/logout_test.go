package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter counts the writes it gets.
type countingWriter struct {
	syncBuffer
	mu     sync.Mutex
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.syncBuffer.Write(p)
}

func (c *countingWriter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// TestGatewayLogGathersLinesAndLosesNone: request lines from many
// goroutines are written together, each whole, within the flush interval;
// a warning goes out at once with everything before it; Close writes the
// rest.
func TestGatewayLogGathersLinesAndLosesNone(t *testing.T) {
	var out countingWriter
	logger, closer := newGatewayLogger(&out)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				logger.Info("request", "n", fmt.Sprintf("%d-%d", g, i), "pad", strings.Repeat("x", i))
			}
		}()
	}
	wg.Wait()
	if got := out.count(); got >= 800/10 {
		t.Errorf("800 lines took %d writes", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "\n") < 800 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 800 lines written after the flush interval", strings.Count(out.String(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen := map[string]bool{}
	for line := range strings.Lines(out.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a line is not whole JSON: %v: %q", err, line)
		}
		seen[m["n"].(string)] = true
	}
	if len(seen) != 800 {
		t.Fatalf("%d distinct lines of 800", len(seen))
	}

	logger.Info("before the warning")
	logger.Warn("upstream down")
	if s := out.String(); !strings.Contains(s, "before the warning") || !strings.Contains(s, "upstream down") {
		t.Fatal("a warning waited for the flush interval")
	}
	logger.Info("last words")
	closer.Close()
	if !strings.Contains(out.String(), "last words") {
		t.Fatal("Close did not write what was left")
	}
	logger.Info("after close")
	if !strings.Contains(out.String(), "after close") {
		t.Fatal("a line after Close was not written")
	}
}
