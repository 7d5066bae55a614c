package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// target is one thing under load: the upstream itself or a proxy in front
// of it.
type target struct {
	name   string
	label  string
	base   string
	token  string
	procs  []*proc
	direct bool // the upstream itself: there is no proxy CPU to count
	tree   bool // count the CPU of the processes' children too (nginx workers)
	full   bool // fhirwall with masks: responses must come back masked
}

// workload is one request the load generator repeats.
type workload struct {
	name  string
	label string
	path  string
}

var workloads = []workload{
	{"read2k", "2 KB Patient read", "/fhir/Patient/bench-1"},
	{"search200k", "200 KB searchset (Claims + included Patients)", "/fhir/Claim?_include=Claim:patient:Patient&_count=60"},
}

// bigPath is the 1 GB searchset (Patients and their Observations).
const bigPath = "/fhir/Patient?_revinclude=Observation:subject"

// sample is one wrk run.
type sample struct {
	requests   int64
	seconds    float64
	rps        float64
	p50, p99   time.Duration
	bytesPerS  float64
	non2xx     int64
	errors     string
	cpuMicros  float64 // proxy CPU over the run
	latencyRun bool
}

// cell aggregates the samples of one target and workload.
type cell struct {
	tput []sample
	lat  []sample
}

// bigResult is one transfer of the big searchset.
type bigResult struct {
	bytes   int64
	seconds float64
	status  int
	err     string
	cpu     float64
	partial bool // stopped at the time limit
	// after is how long the target kept using CPU once the client had
	// gone (until a second with under 5% of a core), afterCPU that CPU in
	// seconds.
	after    time.Duration
	afterCPU float64
}

// settleLimit bounds the wait for a target to go idle after a stopped
// transfer.
const settleLimit = 60 * time.Second

// settle waits until t's processes are idle (under 5% of one core over a
// second) or limit has passed, and returns how long that took and the CPU
// seconds they used meanwhile.
func settle(ctx context.Context, t *target, limit time.Duration) (time.Duration, float64) {
	start := time.Now()
	first := cpuOf(t)
	prev := first
	for time.Since(start) < limit && ctx.Err() == nil {
		time.Sleep(time.Second)
		now := cpuOf(t)
		if now-prev < 0.05e6 {
			return time.Since(start), (now - first) / 1e6
		}
		prev = now
	}
	return time.Since(start), (cpuOf(t) - first) / 1e6
}

type results struct {
	targets   []*target
	cells     map[string]map[string]*cell // workload -> target -> cell
	big       map[string][]bigResult
	bigMiB    int
	rss       map[string]rss
	profiles  []profile
	machine   string
	loadAfter string
	notes     []string
	started   time.Time
	elapsed   time.Duration
}

type rss struct{ hwm, now int64 }

func measure(ctx context.Context, o options, targets []*target) (*results, error) {
	res := &results{targets: targets, cells: map[string]map[string]*cell{}, big: map[string][]bigResult{}, rss: map[string]rss{}, started: time.Now()}
	for _, w := range workloads {
		res.cells[w.name] = map[string]*cell{}
		for _, t := range targets {
			res.cells[w.name][t.name] = &cell{}
		}
	}
	// Check every target answers every workload correctly before timing
	// anything: a fast 403 is not a result.
	for _, t := range targets {
		for _, w := range workloads {
			if note := check(t, w.path); note != "" {
				res.notes = append(res.notes, note)
			}
		}
	}
	// Throughput rounds, alternating targets within each round so that
	// drift in the machine's load hits every target alike.
	for r := 0; r < o.rounds; r++ {
		for _, w := range workloads {
			for _, t := range targets {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				s, err := runWrk(ctx, t, w.path, o.threads, o.conns, o.duration)
				if err != nil {
					return nil, err
				}
				log.Printf("round %d %-10s %-8s %8.0f req/s p50 %-8v p99 %-8v cpu %.0f us/req non2xx %d", r+1, w.name, t.name, s.rps, s.p50, s.p99, perReq(s.cpuMicros, s.requests), s.non2xx)
				res.cells[w.name][t.name].tput = append(res.cells[w.name][t.name].tput, s)
			}
		}
	}
	// Latency with one connection: what one agent waits, without queueing.
	for _, w := range workloads {
		for _, t := range targets {
			s, err := runWrk(ctx, t, w.path, 1, 1, o.latDur)
			if err != nil {
				return nil, err
			}
			s.latencyRun = true
			log.Printf("latency  %-10s %-8s p50 %-8v p99 %-8v", w.name, t.name, s.p50, s.p99)
			res.cells[w.name][t.name].lat = append(res.cells[w.name][t.name].lat, s)
		}
	}
	// Profiles of the two workloads before the big searchset, whose
	// aftermath could otherwise land in them.
	res.profiles = profileFull(ctx, o, targets, false)
	if o.bigMiB > 0 {
		res.bigMiB = o.bigMiB
		for r := 0; r < o.bigRounds; r++ {
			for _, t := range targets {
				b := fetchBig(ctx, t, o.bigMax)
				if b.partial {
					// The agent has gone: how long does the target keep
					// working on a response nobody reads?
					b.after, b.afterCPU = settle(ctx, t, settleLimit)
				}
				log.Printf("big      %-8s %d bytes in %.1f s = %.1f MiB/s status %d partial %v %s; after: %.0f s, %.1f CPU s", t.name, b.bytes, b.seconds, float64(b.bytes)/(1<<20)/b.seconds, b.status, b.partial, b.err, b.after.Seconds(), b.afterCPU)
				res.big[t.name] = append(res.big[t.name], b)
			}
		}
		res.profiles = append(res.profiles, profileFull(ctx, o, targets, true)...)
	}
	for _, t := range targets {
		if t.direct {
			continue
		}
		var r rss
		for _, p := range t.procs {
			h, n := memOf(p.pid(), t.tree)
			r.hwm += h
			r.now += n
		}
		res.rss[t.name] = r
	}
	res.elapsed = time.Since(res.started)
	return res, nil
}

// unmasked says why a response of the full pipeline is not masked as its
// configuration asks, or "" when it is.
func unmasked(body []byte) string {
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		return "not JSON: " + err.Error()
	}
	resources := []map[string]any{top}
	if top["resourceType"] == "Bundle" {
		resources = nil
		es, _ := top["entry"].([]any)
		for _, e := range es {
			en, _ := e.(map[string]any)
			if r, ok := en["resource"].(map[string]any); ok {
				resources = append(resources, r)
			}
		}
	}
	for _, r := range resources {
		masked := ""
		switch r["resourceType"] {
		case "Patient":
			masked = "telecom"
		case "Claim":
			masked = "diagnosis"
		default:
			continue
		}
		if _, ok := r[masked]; ok {
			return fmt.Sprintf("%v/%v still has %s", r["resourceType"], r["id"], masked)
		}
		raw, _ := json.Marshal(r["meta"])
		if !strings.Contains(string(raw), "REDACTED") {
			return fmt.Sprintf("%v/%v has no REDACTED label", r["resourceType"], r["id"])
		}
	}
	return ""
}

// profileFull records where the full pipeline's CPU goes under each
// workload (or, with big, during the first seconds of the big searchset),
// after the measurements so that perf disturbs none of them.
func profileFull(ctx context.Context, o options, targets []*target, big bool) []profile {
	if o.profile <= 0 {
		return nil
	}
	if _, err := exec.LookPath("perf"); err != nil {
		log.Print("perf is not installed: no profile")
		return nil
	}
	var full *target
	for _, t := range targets {
		if t.full {
			full = t // fw-full, before any fw-base
			break
		}
	}
	if full == nil {
		return nil
	}
	if big {
		p := profileDuring(ctx, o.work, full, "big", o.profile, func() error {
			b := fetchBig(ctx, full, o.profile)
			if b.err != "" {
				return fmt.Errorf("%s", b.err)
			}
			return nil
		})
		log.Printf("profile  %-10s %d frames %s", "big", len(p.frames), p.err)
		settle(ctx, full, settleLimit)
		return []profile{p}
	}
	var out []profile
	for _, w := range workloads {
		p := profileDuring(ctx, o.work, full, w.name, o.profile, func() error {
			_, err := runWrk(ctx, full, w.path, o.threads, o.conns, o.profile)
			return err
		})
		log.Printf("profile  %-10s %d frames %s", w.name, len(p.frames), p.err)
		out = append(out, p)
	}
	return out
}

// check fetches path once through t and says what is wrong, if anything.
func check(t *target, path string) string {
	req, _ := http.NewRequest("GET", t.base+path, nil)
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Sprintf("%s GET %s: %v", t.name, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("%s GET %s: %d %.300s", t.name, path, resp.StatusCode, body)
	}
	if t.full {
		if why := unmasked(body); why != "" {
			return fmt.Sprintf("%s GET %s: %s", t.name, path, why)
		}
	}
	return ""
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs     = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	reTransfer = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	reP50      = regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s|m)`)
	reP99      = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s|m)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reErrors   = regexp.MustCompile(`Socket errors: .*`)
)

func unit(v float64, u string) time.Duration {
	switch u {
	case "us":
		return time.Duration(v * float64(time.Microsecond))
	case "ms":
		return time.Duration(v * float64(time.Millisecond))
	case "s":
		return time.Duration(v * float64(time.Second))
	case "m":
		return time.Duration(v * float64(time.Minute))
	}
	return 0
}

// runWrk runs wrk against t and reads its report, and the CPU time t's
// processes spent meanwhile.
func runWrk(ctx context.Context, t *target, path string, threads, conns int, d time.Duration) (sample, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", "--timeout", "10s"}
	if t.token != "" {
		args = append(args, "-H", "Authorization: Bearer "+t.token)
	}
	args = append(args, t.base+path)
	cpu0 := cpuOf(t)
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	cpu1 := cpuOf(t)
	if err != nil {
		return sample{}, fmt.Errorf("wrk %s: %v\n%s", t.name, err, out)
	}
	s := parseWrk(string(out))
	s.cpuMicros = cpu1 - cpu0
	if s.requests == 0 {
		return s, fmt.Errorf("wrk %s: no requests completed:\n%s", t.name, out)
	}
	return s, nil
}

// parseWrk reads wrk's report (run with --latency).
func parseWrk(text string) sample {
	var s sample
	if m := reRPS.FindStringSubmatch(text); m != nil {
		s.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reReqs.FindStringSubmatch(text); m != nil {
		s.requests, _ = strconv.ParseInt(m[1], 10, 64)
		v, _ := strconv.ParseFloat(m[2], 64)
		s.seconds = unit(v, m[3]).Seconds()
	}
	if m := reTransfer.FindStringSubmatch(text); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		s.bytesPerS = v * map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m[2]]
	}
	if m := reP50.FindStringSubmatch(text); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		s.p50 = unit(v, m[2])
	}
	if m := reP99.FindStringSubmatch(text); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		s.p99 = unit(v, m[2])
	}
	if m := reNon2xx.FindStringSubmatch(text); m != nil {
		s.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	s.errors = reErrors.FindString(text)
	return s
}

// fetchBig downloads the big searchset through t with a Go client, for at
// most limit: a slower target's rate is then measured on what it sent in
// that time (partial is set).
func fetchBig(ctx context.Context, t *target, limit time.Duration) bigResult {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", t.base+bigPath, nil)
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	cpu0 := cpuOf(t)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Minute}).Do(req)
	if err != nil {
		return bigResult{err: err.Error()}
	}
	defer resp.Body.Close()
	n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 256<<10))
	b := bigResult{bytes: n, seconds: time.Since(start).Seconds(), status: resp.StatusCode, cpu: cpuOf(t) - cpu0}
	switch {
	case err != nil && ctx.Err() != nil:
		b.partial = true
	case err != nil:
		b.err = err.Error()
	}
	return b
}

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clkTck = 100

// cpuOf returns the user+system CPU time of t's processes in µs (with
// their children when t.tree is set). The direct target counts nothing.
func cpuOf(t *target) float64 {
	if t.direct {
		return 0
	}
	var total float64
	for _, p := range t.procs {
		pids := []int{p.pid()}
		if t.tree {
			pids = append(pids, childrenOf(p.pid())...)
		}
		for _, pid := range pids {
			total += procCPU(pid)
		}
	}
	return total
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" that closes the command name: state is field 3,
	// utime field 14 and stime field 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) * 1e6 / clkTck
}

func childrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

// memOf returns VmHWM and VmRSS in bytes (summed over children when tree).
func memOf(pid int, tree bool) (hwm, now int64) {
	pids := []int{pid}
	if tree {
		pids = append(pids, childrenOf(pid)...)
	}
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmHWM:":
				hwm += v << 10
			case "VmRSS:":
				now += v << 10
			}
		}
	}
	return hwm, now
}

func perReq(micros float64, n int64) float64 {
	if n == 0 {
		return 0
	}
	return micros / float64(n)
}
