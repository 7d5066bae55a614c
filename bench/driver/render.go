package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func describeMachine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) >= 2 {
			mem = f[1] + " kB"
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	wrkV := "?"
	if out, _ := exec.Command("wrk", "-v").CombinedOutput(); len(out) > 0 {
		wrkV = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	nginxV := "not installed"
	if out, err := exec.Command("nginx", "-v").CombinedOutput(); err == nil {
		nginxV = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("- CPU: %d × %s (nproc %d)\n- memory: %s, kernel %s, %s\n- load average at start: %s\n- %s; %s; driver built with %s",
		runtime.NumCPU(), model, runtime.NumCPU(), mem, kernel, runtime.GOOS+"/"+runtime.GOARCH, loadAvg(), wrkV, nginxV, runtime.Version())
}

// agg is the aggregate of a cell's throughput samples.
type agg struct {
	rps, p50, p99, mibs, cpuPerReq float64 // p50/p99 in ms
	non2xx                         int64
}

func aggregate(ss []sample) agg {
	var a agg
	var cpu float64
	var reqs int64
	for _, s := range ss {
		a.rps += s.rps
		a.p50 += float64(s.p50) / float64(time.Millisecond)
		a.p99 += float64(s.p99) / float64(time.Millisecond)
		a.mibs += s.bytesPerS / (1 << 20)
		cpu += s.cpuMicros
		reqs += s.requests
		a.non2xx += s.non2xx
	}
	if n := float64(len(ss)); n > 0 {
		a.rps, a.p50, a.p99, a.mibs = a.rps/n, a.p50/n, a.p99/n, a.mibs/n
	}
	a.cpuPerReq = perReq(cpu, reqs)
	return a
}

func ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// bigRate returns the MiB/s of t's big transfers and the MiB received. A
// complete transfer is rated on the size the upstream sent (masking makes
// fhirwall's body smaller); one stopped at the time limit on what arrived,
// which understates a masking target by the share masking removed.
func bigRate(res *results, name string, size int64) (rate, recv, cpuS float64, note string) {
	var secs, mib float64
	var bytes int64
	for _, b := range res.big[name] {
		switch {
		case b.status != 200 || b.err != "":
			note = fmt.Sprintf("status %d %s", b.status, b.err)
		case b.partial:
			note = fmt.Sprintf("stopped after %.0f s (rated on bytes received)", b.seconds)
		}
		secs += b.seconds
		bytes += b.bytes
		if b.partial || size == 0 {
			mib += float64(b.bytes) / (1 << 20)
		} else {
			mib += float64(size) / (1 << 20)
		}
		cpuS += b.cpu / 1e6
	}
	n := float64(len(res.big[name]))
	if n == 0 || secs == 0 {
		return 0, 0, 0, "not run"
	}
	return mib / secs, float64(bytes) / n / (1 << 20), cpuS / n, note
}

func render(o options, res *results) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# fhirwall load benchmark\n\n")
	w("Written by `bench/run.sh` (bench/driver) on %s in %s. All processes ran on this one machine, alongside whatever else it was running: read the ratios, not the absolute figures, and prefer CPU µs per request, which queueing on a shared machine disturbs least.\n\n",
		res.started.UTC().Format("2006-01-02 15:04 UTC"), res.elapsed.Round(time.Second))
	w("## Machine\n\n%s\n- load average at the end: %s\n\n", res.machine, res.loadAfter)
	w("## Setup\n\n")
	w("- upstream: `bench/upstream`, canned FHIR JSON from memory (Go net/http); the big searchset is generated while streaming (`fhirsample.WriteSearchset`).\n")
	w("- load: wrk, %d threads × %d connections, %s per round, %d alternating rounds (each round runs every target once per workload); latency: wrk with 1 connection for %s.\n",
		o.threads, o.conns, o.duration, o.rounds, o.latDur)
	w("- CPU µs/request: utime+stime of the proxy process (nginx: master and workers) from /proc/PID/stat over the run, divided by the requests wrk completed. The upstream's and wrk's CPU are not counted.\n")
	w("- both fhirwall targets authenticate every request (ES256 JWT, verified-token cache) and write every access to a SQLite audit store (audit cannot be switched off: no record, no disclosure). *auth only* has one role with `system/*.rs` and no masks; *full* has granular scopes (Patient, Claim, Observation) and masks (Claim.diagnosis; Patient.telecom, SSN identifier, birthDate generalized).\n\n")
	if o.memLimit != "" {
		w("- both fhirwall targets run with `GOMEMLIMIT=%s`, the Go runtime's soft memory limit, set as a deployment with a memory budget would (docs/configuration.md, *Memory*). It bounds Go's own memory only: the mapped binary (~23 MiB resident) and SQLite's page caches come on top. `-fw-memlimit ''` (BENCH_FW_MEMLIMIT=none) runs them without it.\n\n", o.memLimit)
	}
	for _, t := range res.targets {
		w("- `%s`: %s\n", t.name, t.label)
	}
	w("\n")
	if len(res.notes) > 0 {
		w("**Notes and problems found before timing** (a target with a failed check measures error responses, not the workload):\n\n")
		for _, n := range res.notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	for _, wl := range workloads {
		plain := aggregate(res.cells[wl.name]["plain"].tput)
		w("## %s: `GET %s`\n\n", wl.label, wl.path)
		w("| target | req/s | × plain | p50 ms | p99 ms | MiB/s | CPU µs/req | × plain | non-2xx |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range res.targets {
			a := aggregate(res.cells[wl.name][t.name].tput)
			cpu := "–"
			if !t.direct {
				cpu = fmt.Sprintf("%.0f", a.cpuPerReq)
			}
			w("| %s | %.0f | %s | %.2f | %.2f | %.1f | %s | %s | %d |\n", t.name, a.rps, ratio(a.rps, plain.rps), a.p50, a.p99, a.mibs, cpu, ratio(a.cpuPerReq, plain.cpuPerReq), a.non2xx)
		}
		lp := aggregate(res.cells[wl.name]["plain"].lat)
		ld := aggregate(res.cells[wl.name]["direct"].lat)
		w("\nOne connection (latency an agent sees without queueing):\n\n| target | p50 ms | p99 ms | p50 added over direct ms | p50 added over plain proxy ms |\n|---|---:|---:|---:|---:|\n")
		for _, t := range res.targets {
			a := aggregate(res.cells[wl.name][t.name].lat)
			w("| %s | %.3f | %.3f | %+.3f | %+.3f |\n", t.name, a.p50, a.p99, a.p50-ld.p50, a.p50-lp.p50)
		}
		w("\n")
	}
	var size int64
	for _, x := range res.big["direct"] {
		size = max(size, x.bytes)
	}
	if res.bigMiB > 0 {
		w("## %d MiB searchset: `GET %s`\n\n", res.bigMiB, bigPath)
		w("One Go client downloading to /dev/null, %d round(s), each transfer stopped after %s at most (then the driver waits, up to 60 s, until the target is idle, and reports how long it kept working on a response nobody reads). MiB/s is on the size the upstream sent (%.1f MiB) for complete transfers (fhirwall's masked body is smaller), on the bytes received for stopped ones.\n\n", o.bigRounds, o.bigMax, float64(size)/(1<<20))
		w("| target | MiB/s | × plain | MiB received | proxy CPU s | after the client left | problem |\n|---|---:|---:|---:|---:|---|---|\n")
		pr, _, _, _ := bigRate(res, "plain", size)
		for _, t := range res.targets {
			r, recv, cpu, bad := bigRate(res, t.name, size)
			cpus := "–"
			if !t.direct {
				cpus = fmt.Sprintf("%.1f", cpu)
			}
			after := "–"
			for _, b := range res.big[t.name] {
				if b.partial {
					after = fmt.Sprintf("busy %.0f s more, %.1f CPU s", b.after.Seconds(), b.afterCPU)
				}
			}
			w("| %s | %.1f | %s | %.1f | %s | %s | %s |\n", t.name, r, ratio(r, pr), recv, cpus, after, bad)
		}
		w("\n")
	}
	w("## Memory\n\nPeak RSS (VmHWM) over the whole run, big searchset included, and RSS at the end.\n\n| target | peak RSS MiB | RSS at end MiB |\n|---|---:|---:|\n")
	for _, t := range res.targets {
		if r, ok := res.rss[t.name]; ok {
			w("| %s | %.1f | %.1f |\n", t.name, float64(r.hwm)/(1<<20), float64(r.now)/(1<<20))
		}
	}
	w("\n")
	if len(res.profiles) > 0 {
		w("## Where the full pipeline's CPU goes\n\n")
		w("`perf record -g` of the fw-full process for %s per workload, after that workload's measurements (same load as the throughput rounds; the big searchset: the first %s of one more transfer). Inclusive share of the process's samples; frames under 2%% and pure dispatch frames are left out; fhirwall packages are named without the module path.\n\n", o.profile, o.profile)
		for _, p := range res.profiles {
			w("**%s**", p.workload)
			if p.err != "" {
				w(" (%s)", p.err)
			}
			w("\n\n| inclusive | function | | self | function |\n|---:|---|---|---:|---|\n")
			for i := 0; i < max(len(p.frames), len(p.self)); i++ {
				if i < len(p.frames) {
					w("| %.1f%% | `%s` | ", p.frames[i].pct, p.frames[i].sym)
				} else {
					w("| | | ")
				}
				if i < len(p.self) {
					w("| %.1f%% | `%s` |\n", p.self[i].pct, p.self[i].sym)
				} else {
					w("| | |\n")
				}
			}
			w("\n")
		}
	}
	w("## Issue 7 targets (full pipeline against the plain Go proxy, same run)\n\n| target | wanted | measured | met |\n|---|---|---|---|\n")
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	plainRead := aggregate(res.cells["read2k"]["plain"].tput)
	fullRead := aggregate(res.cells["read2k"]["fw-full"].tput)
	plainSearch := aggregate(res.cells["search200k"]["plain"].tput)
	fullSearch := aggregate(res.cells["search200k"]["fw-full"].tput)
	rr := fullRead.rps / plainRead.rps
	rs := fullSearch.rps / plainSearch.rps
	w("| requests/s, 2 KB read | ≥ 0.8× | %.2f× | %s |\n", rr, met(rr >= 0.8 && fullRead.non2xx == 0))
	w("| requests/s, 200 KB masked searchset | ≥ 0.35× | %.2f× | %s |\n", rs, met(rs >= 0.35 && fullSearch.non2xx == 0))
	if res.bigMiB > 0 {
		pr, _, _, _ := bigRate(res, "plain", size)
		fr, _, _, bad := bigRate(res, "fw-full", size)
		w("| MiB/s, %d MiB masked searchset | ≥ 0.5× | %.2f× | %s |\n", res.bigMiB, fr/pr, met(fr/pr >= 0.5 && !strings.HasPrefix(bad, "status")))
	}
	lp := aggregate(res.cells["read2k"]["plain"].lat)
	lf := aggregate(res.cells["read2k"]["fw-full"].lat)
	added := lf.p50 - lp.p50
	w("| p50 added latency (2 KB read, 1 connection, over the plain proxy) | < 1 ms | %.3f ms | %s |\n", added, met(added < 1))
	if r, ok := res.rss["fw-full"]; ok {
		mib := float64(r.hwm) / (1 << 20)
		w("| peak RSS | < 64 MiB | %.1f MiB | %s |\n", mib, met(mib < 64))
	}
	w("| CPU µs/request, 2 KB read (reported, no target) | – | %.0f (plain %.0f, %s) | – |\n", fullRead.cpuPerReq, plainRead.cpuPerReq, ratio(fullRead.cpuPerReq, plainRead.cpuPerReq))
	w("| CPU µs/request, 200 KB searchset (reported, no target) | – | %.0f (plain %.0f, %s) | – |\n", fullSearch.cpuPerReq, plainSearch.cpuPerReq, ratio(fullSearch.cpuPerReq, plainSearch.cpuPerReq))
	w("\nReproduce: `bench/run.sh` (BENCH_DURATION, BENCH_ROUNDS, BENCH_BIG_MB, BENCH_CONNECTIONS, BENCH_THREADS, BENCH_NGINX=0|install).\n")
	return b.String()
}
