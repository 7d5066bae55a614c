// Command driver runs fhirwall's load benchmark (bench/run.sh builds it and
// calls it): it starts the static upstream, the plain Go proxy, nginx when
// installed, fhirwall with auth only and fhirwall with its full pipeline,
// drives each with wrk in alternating rounds, measures the big searchset
// with a Go client, reads CPU time and peak RSS from /proc, and writes the
// results table with the machine description as Markdown.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/fhirwall/fhirwall/policy"
)

// options are the driver's knobs; run.sh maps BENCH_* variables onto them.
type options struct {
	bin       string // folder holding upstream, plainproxy and fhirwall binaries
	out       string // the Markdown file to write
	duration  time.Duration
	latDur    time.Duration
	rounds    int
	conns     int
	threads   int
	bigMiB    int
	bigRounds int
	bigMax    time.Duration
	nginx     bool
	keep      bool
	hold      bool
	profile   time.Duration // perf record fw-full for this long per workload (0: no)
	memLimit  string        // GOMEMLIMIT of the fhirwall targets ("": none)
	baseBin   string        // another fhirwall binary measured as fw-base ("": none)
	baseLabel string        // what baseBin was built from
	work      string        // the work folder (set by run)
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "folder with the upstream, plainproxy and fhirwall binaries")
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "results file (Markdown)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "wrk duration of one throughput round")
	flag.DurationVar(&o.latDur, "latency-duration", 5*time.Second, "wrk duration of the one-connection latency round")
	flag.IntVar(&o.rounds, "rounds", 2, "alternating throughput rounds")
	flag.IntVar(&o.conns, "connections", 16, "wrk connections in throughput rounds")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads in throughput rounds")
	flag.IntVar(&o.bigMiB, "big-mb", 1024, "size of the big searchset in MiB (0 skips it)")
	flag.IntVar(&o.bigRounds, "big-rounds", 1, "alternating rounds of the big searchset")
	flag.DurationVar(&o.bigMax, "big-max", 60*time.Second, "stop one big transfer after this long and rate what arrived")
	flag.BoolVar(&o.nginx, "nginx", true, "measure nginx too when it is installed")
	flag.BoolVar(&o.keep, "keep", false, "keep the work folder (configs, audit databases, logs)")
	flag.BoolVar(&o.hold, "hold", false, "start every target, print its URL and token, and wait for an interrupt instead of measuring (for profiling by hand)")
	flag.DurationVar(&o.profile, "profile", 8*time.Second, "profile the full pipeline with perf for this long per workload, when perf is installed (0 skips)")
	flag.StringVar(&o.baseBin, "base-bin", "", "a fhirwall binary of another revision, run with the full pipeline as the extra target fw-base: a before/after in the same run")
	flag.StringVar(&o.baseLabel, "base-label", "", "what -base-bin was built from (a git revision), for the results")
	flag.StringVar(&o.memLimit, "fw-memlimit", "32MiB", "GOMEMLIMIT of the fhirwall targets, the deployment setting for a memory budget (docs/configuration.md); empty: none")
	flag.Parse()
	if o.bin == "" {
		log.Fatal("driver: -bin is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatalf("driver: %v", err)
	}
}

// proc is a started child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.log.Close()
}

// start runs a child with its output in dir/name.log; when wantLine is set
// it waits for a stdout line starting with it and returns that line.
func start(dir, name string, wantLine string, args ...string) (*proc, string, error) {
	return startEnv(dir, name, wantLine, nil, args...)
}

// startEnv is start with env added to the driver's environment.
func startEnv(dir, name string, wantLine string, env []string, args ...string) (*proc, string, error) {
	lf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stderr = lf
	var out io.ReadCloser
	if wantLine != "" {
		out, err = cmd.StdoutPipe()
		if err != nil {
			return nil, "", err
		}
	} else {
		cmd.Stdout = lf
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if wantLine == "" {
		return p, "", nil
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), wantLine) {
				line <- sc.Text()
				break
			}
			fmt.Fprintln(lf, sc.Text())
		}
		_, _ = io.Copy(lf, out)
	}()
	select {
	case l := <-line:
		return p, l, nil
	case <-p.done:
		return nil, "", fmt.Errorf("%s exited at start; see %s", name, lf.Name())
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s did not start within 60 s", name)
	}
}

// waitHTTP polls url until it answers 200.
func waitHTTP(url string, p *proc) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited; see %s", p.name, p.log.Name())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not ready within 30 s", p.name, url)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// fhirwallConfig is the gateway configuration of both fhirwall targets;
// .Full selects the full pipeline (granular scopes and masks) over auth
// only (one role whose scopes allow every read, no masks).
const fhirwallConfig = `listen: {{.Listen}}
public_base_url: http://{{.Listen}}
auth:
  issuers:
    - issuer: {{.Issuer}}
      jwks_file: jwks.json
      audiences: [http://{{.Listen}}/fhir]
      algorithms: [ES256]
agents:
  - id: bench-agent
    roles: [bench]
roles:
  bench:
{{- if .Full}}
    scopes: [system/Patient.rs, system/Claim.rs, system/Observation.rs]
    masks: [hide-diagnosis, contact-minimum]
{{- else}}
    scopes: [system/*.rs]
{{- end}}
{{- if .Full}}
masks:
  hide-diagnosis: [Claim.diagnosis]
  contact-minimum:
    - Patient.telecom
    - path: Patient.identifier.where(system='http://hl7.org/fhir/sid/us-ssn')
    - path: Patient.birthDate
      action: generalize
{{- end}}
routes:
  - name: ehr
    prefix: /fhir
    kind: fhir
    upstream: {{.Upstream}}/fhir
audit:
  store: sqlite://audit.db
`

// startFhirwall writes a configuration into its own folder and runs
// `fhirwall serve`; it returns the process, its base URL and a token.
func startFhirwall(o options, bin, work, name, upstream string, full bool) (*proc, string, string, error) {
	dir := filepath.Join(work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	issuer := "http://" + addr + "/bench-issuer"
	keyFile := filepath.Join(dir, "issuer-key.pem")
	if err := policy.GenerateDevKey(keyFile); err != nil {
		return nil, "", "", err
	}
	key, err := policy.LoadSigningKey(keyFile)
	if err != nil {
		return nil, "", "", err
	}
	jwks, err := policy.PublicJWKS(key)
	if err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o644); err != nil {
		return nil, "", "", err
	}
	var cfg strings.Builder
	err = template.Must(template.New("c").Parse(fhirwallConfig)).Execute(&cfg, map[string]any{
		"Listen": addr, "Issuer": issuer, "Upstream": upstream, "Full": full,
	})
	if err != nil {
		return nil, "", "", err
	}
	cfgFile := filepath.Join(dir, "fhirwall.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o644); err != nil {
		return nil, "", "", err
	}
	scopes := []string{"system/*.rs"}
	if full {
		scopes = []string{"system/Patient.rs", "system/Claim.rs", "system/Observation.rs"}
	}
	tok, err := policy.MintDevToken(key, policy.DevToken{
		Issuer: issuer, Audience: "http://" + addr + "/fhir", Agent: "bench-agent", Scopes: scopes, TTL: 6 * time.Hour,
	})
	if err != nil {
		return nil, "", "", err
	}
	var env []string
	if o.memLimit != "" {
		env = append(env, "GOMEMLIMIT="+o.memLimit)
	}
	p, _, err := startEnv(dir, name, "", env, bin, "serve", "--config", cfgFile)
	if err != nil {
		return nil, "", "", err
	}
	base := "http://" + addr
	if err := waitHTTP(base+"/readyz", p); err != nil {
		p.stop()
		return nil, "", "", err
	}
	return p, base, tok, nil
}

// nginxConfig is nginx as a plain reverse proxy: upstream keepalive,
// HTTP/1.1, no access log, streaming (no response buffering to disk).
const nginxConfig = `worker_processes 2;
daemon off;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  upstream fhir { server {{.Upstream}}; keepalive 64; }
  server {
    listen {{.Listen}};
    location / {
      proxy_pass http://fhir;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
      proxy_busy_buffers_size 128k;
    }
  }
}
`

func startNginx(work, upstreamHostPort string) (*proc, string, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(work, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	var cfg strings.Builder
	_ = template.Must(template.New("n").Parse(nginxConfig)).Execute(&cfg, map[string]string{
		"Dir": dir, "Upstream": upstreamHostPort, "Listen": addr,
	})
	cfgFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o644); err != nil {
		return nil, "", err
	}
	p, _, err := start(dir, "nginx", "", bin, "-p", dir, "-c", cfgFile)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	// nginx has no health path: the upstream's answers through it.
	if err := waitHTTP(base+"/healthz", p); err != nil {
		p.stop()
		msg, _ := os.ReadFile(filepath.Join(dir, "nginx.log"))
		return nil, "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(msg)))
	}
	return p, base, nil
}

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "fhirwall-bench-")
	if err != nil {
		return err
	}
	o.work = work
	if o.keep {
		log.Printf("work folder: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	up, line, err := start(work, "upstream", "listening ", filepath.Join(o.bin, "upstream"), "-big-mb", fmt.Sprint(max(o.bigMiB, 1)))
	if err != nil {
		return err
	}
	procs = append(procs, up)
	upBase := strings.Fields(strings.TrimPrefix(line, "listening "))[0]
	log.Print(line)

	pp, line, err := start(work, "plainproxy", "listening ", filepath.Join(o.bin, "plainproxy"), "-upstream", upBase)
	if err != nil {
		return err
	}
	procs = append(procs, pp)
	ppBase := strings.TrimPrefix(line, "listening ")

	targets := []*target{
		{name: "direct", label: "direct to upstream", base: upBase, procs: []*proc{up}, direct: true},
		{name: "plain", label: "plain Go proxy (httputil, 64 KiB buffers)", base: ppBase, procs: []*proc{pp}},
	}
	var notes []string
	if o.nginx {
		np, nBase, err := startNginx(work, strings.TrimPrefix(upBase, "http://"))
		switch {
		case errors.Is(err, exec.ErrNotFound):
			log.Print("nginx is not installed: skipped")
			notes = append(notes, "nginx is not installed: not measured (BENCH_NGINX=install installs it)")
		case err != nil:
			log.Printf("nginx: %v: skipped", err)
			notes = append(notes, fmt.Sprintf("nginx did not start (%v): not measured", err))
		default:
			procs = append(procs, np)
			targets = append(targets, &target{name: "nginx", label: "nginx (Debian) reverse proxy", base: nBase, procs: []*proc{np}, tree: true})
		}
	}
	fa, faBase, faTok, err := startFhirwall(o, filepath.Join(o.bin, "fhirwall"), work, "fhirwall-auth", upBase, false)
	if err != nil {
		return err
	}
	procs = append(procs, fa)
	ff, ffBase, ffTok, err := startFhirwall(o, filepath.Join(o.bin, "fhirwall"), work, "fhirwall-full", upBase, true)
	if err != nil {
		return err
	}
	procs = append(procs, ff)
	targets = append(targets,
		&target{name: "fw-auth", label: "fhirwall, auth only (allow-all scopes, no masks)", base: faBase, token: faTok, procs: []*proc{fa}},
		&target{name: "fw-full", label: "fhirwall, full pipeline (auth+authz+masking+SQLite audit)", base: ffBase, token: ffTok, procs: []*proc{ff}, full: true},
	)
	if o.baseBin != "" {
		// The same full pipeline from another revision, after fw-full so
		// that the perf profile and the targets stay fw-full's.
		fb, fbBase, fbTok, err := startFhirwall(o, o.baseBin, work, "fhirwall-base", upBase, true)
		if err != nil {
			return fmt.Errorf("the base binary: %w", err)
		}
		procs = append(procs, fb)
		label := "the same full pipeline, built from " + cmp.Or(o.baseLabel, o.baseBin)
		targets = append(targets, &target{name: "fw-base", label: label, base: fbBase, token: fbTok, procs: []*proc{fb}, full: true})
	}
	if o.hold {
		for _, t := range targets {
			fmt.Printf("%s\t%s\t%s\n", t.name, t.base, t.token)
		}
		fmt.Println("holding; interrupt to stop")
		<-ctx.Done()
		return nil
	}
	machineBefore := describeMachine()
	res, err := measure(ctx, o, targets)
	if err != nil {
		return err
	}
	res.machine = machineBefore
	res.notes = append(notes, res.notes...)
	res.loadAfter = loadAvg()
	md := render(o, res)
	if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}
