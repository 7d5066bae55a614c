package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// frame is one function of a CPU profile with its inclusive share of the
// profiled process's samples.
type frame struct {
	pct float64
	sym string
}

// profile is where fhirwall's CPU went during one workload.
type profile struct {
	workload string
	frames   []frame // inclusive (children counted)
	self     []frame // exclusive: where the samples landed
	err      string
}

// libraryFrames are functions outside fhirwall worth showing: they name
// the cost centres (GC, SQLite, JSON encoding, JSON validation, logging).
var libraryFrames = []string{
	"runtime.gcBgMarkWorker",
	"runtime.mallocgc",
	"modernc.org/sqlite.(*conn).step",
	"encoding/json.Marshal",
	"github.com/tidwall/gjson.validpayload",
	"log/slog.(*Logger).logAttrs",
	"net/http/httputil.(*ReverseProxy).ServeHTTP",
	"crypto/ecdsa.Verify",
}

// dispatchFrames wrap everything below them and say nothing.
var dispatchFrames = regexp.MustCompile(`proxy\.\(\*Gateway\)\.ServeHTTP|proxy\.\(\*fhirRoute\)\.ServeHTTP|gowrap|-fm$|\.func[0-9]+$`)

var perfSelfLine = regexp.MustCompile(`^\s+([0-9.]+)%\s+\[[.k]\]\s+(\S.*?)\s*(-\s+-\s*)?$`)

var perfLine = regexp.MustCompile(`^\s+([0-9.]+)%\s+[0-9.]+%\s+\[[.k]\]\s+(\S.*?)\s*(-\s+-\s*)?$`)

// profileDuring records t's first process with perf while run runs, for
// d, and returns the biggest frames.
func profileDuring(ctx context.Context, work string, t *target, name string, d time.Duration, run func() error) profile {
	p := profile{workload: name}
	out := filepath.Join(work, "perf-"+name+".data")
	perf := exec.CommandContext(ctx, "perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(t.procs[0].pid()), "-o", out, "--", "sleep", fmt.Sprint(int(d.Seconds())))
	perf.Stdout, perf.Stderr = nil, nil
	if err := perf.Start(); err != nil {
		p.err = err.Error()
		_ = run()
		return p
	}
	runErr := run()
	_ = perf.Wait()
	if runErr != nil {
		p.err = runErr.Error()
	}
	rep, err := exec.CommandContext(ctx, "perf", "report", "-i", out, "--children", "--sort", "symbol", "--stdio", "-g", "none").Output()
	self, _ := exec.CommandContext(ctx, "perf", "report", "-i", out, "--no-children", "--sort", "symbol", "--stdio", "-g", "none").Output()
	_ = os.Remove(out)
	for _, line := range strings.Split(string(self), "\n") {
		if m := perfSelfLine.FindStringSubmatch(line); m != nil && len(p.self) < 8 {
			pct, _ := strconv.ParseFloat(m[1], 64)
			p.self = append(p.self, frame{pct, strings.TrimPrefix(strings.TrimSpace(m[2]), "github.com/fhirwall/fhirwall/")})
		}
	}
	if err != nil {
		p.err = "perf report: " + err.Error()
		return p
	}
	for _, line := range strings.Split(string(rep), "\n") {
		m := perfLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pct, _ := strconv.ParseFloat(m[1], 64)
		sym := strings.TrimSpace(m[2])
		keep := strings.HasPrefix(sym, "github.com/fhirwall/fhirwall/") && !dispatchFrames.MatchString(sym)
		for _, l := range libraryFrames {
			keep = keep || sym == l
		}
		if keep && pct >= 2 {
			p.frames = append(p.frames, frame{pct, strings.TrimPrefix(sym, "github.com/fhirwall/fhirwall/")})
		}
	}
	sort.SliceStable(p.frames, func(i, j int) bool { return p.frames[i].pct > p.frames[j].pct })
	if len(p.frames) > 16 {
		p.frames = p.frames[:16]
	}
	return p
}
