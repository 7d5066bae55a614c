package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/guard"
	"github.com/fhirwall/fhirwall/policy"
	"github.com/fhirwall/fhirwall/proxy"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve --config FILE", stderr)
	file := fs.String("config", "", "the configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		fs.Usage()
		return exitError{2}
	}
	logger, logs := newGatewayLogger(stdout)
	defer logs.Close()
	cfg, err := loadConfigOrReport(*file, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := startGateway(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	defer srv.close()
	go watchConfig(ctx, *file, srv, logger)
	logger.Info("fhirwall serving", "listen", srv.addr, "policy", cfg.Version)
	<-ctx.Done()
	logger.Info("shutting down")
	return nil
}

// server is a running gateway with what it needs closed on the way out.
type server struct {
	addr    string
	gw      *proxy.Gateway
	http    *http.Server
	closers []func() error
}

// close drains in-flight requests (their audit records complete), then
// closes the audit log last so nothing in flight loses its record.
func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	s.gw.Close()
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
}

// startGateway opens the audit log and the guard state for cfg, builds the
// gateway and starts listening. When ln is nil it listens on cfg.Listen.
func startGateway(ctx context.Context, cfg *policy.Config, logger *slog.Logger, ln net.Listener) (*server, error) {
	s := &server{}
	fail := func(err error) (*server, error) {
		for i := len(s.closers) - 1; i >= 0; i-- {
			_ = s.closers[i]()
		}
		return nil, err
	}
	host, _ := os.Hostname()
	log, err := audit.Open(ctx, resolveStore(cfg), audit.Options{
		Source:             "fhirwall@" + host,
		ServerAddr:         cfg.Listen,
		BaseURL:            cfg.PublicBaseURL,
		CheckpointKeyFile:  resolveFile(cfg, cfg.Audit.CheckpointKeyFile),
		CheckpointEvery:    cfg.Audit.CheckpointEvery,
		CheckpointInterval: cfg.Audit.CheckpointInterval.D(0),
		Sinks:              auditSinks(cfg),
	})
	if err != nil {
		return fail(fmt.Errorf("open audit store: %w", err))
	}
	s.closers = append(s.closers, log.Close)
	go verifyAtStart(ctx, log, logger)
	gopts := guard.Options{StateFile: revocationsFile(cfg)}
	if cfg.Redis != nil {
		gopts.StateFile = ""
		ropts, err := redis.ParseURL(cfg.Redis.URL)
		if err != nil {
			return fail(fmt.Errorf("redis.url: %w", err))
		}
		client := redis.NewClient(ropts)
		s.closers = append(s.closers, client.Close)
		gopts.Redis = client
		gopts.FailOpenLimits = cfg.Redis.FailOpenRateLimits
	}
	gopts.AutoRevokeOnBudget = cfg.AutoRevokeOnPatientBudget
	gopts.OnBudgetExceeded = budgetExceeded(log, logger, cfg.AutoRevokeOnPatientBudget)
	g, err := guard.New(ctx, gopts)
	if err != nil {
		return fail(fmt.Errorf("start guard: %w", err))
	}
	s.closers = append(s.closers, g.Close)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gw, err := proxy.New(ctx, cfg, proxy.Deps{Audit: log, Guard: g, Logger: logger, Registry: reg})
	if err != nil {
		return fail(err)
	}
	s.gw = gw
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Listen)
		if err != nil {
			gw.Close()
			return fail(err)
		}
	}
	t := cfg.Timeouts
	s.addr = ln.Addr().String()
	s.http = &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: t.ReadHeader.D(10 * time.Second),
		ReadTimeout:       t.Read.D(60 * time.Second),
		WriteTimeout:      t.Write.D(0),
		IdleTimeout:       t.Idle.D(120 * time.Second),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("server stopped", "error", err.Error())
		}
	}()
	return s, nil
}

// verifyAtStart checks the audit chain in the background when the gateway
// starts, so that a chain edited while fhirwall was down is reported at
// once instead of at the next audit verify. The gateway keeps serving: the
// new records chain onto what is there, and verify keeps pointing at the
// first broken one.
func verifyAtStart(ctx context.Context, log *audit.Log, logger *slog.Logger) {
	rep, err := log.Verify(ctx)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			logger.Error("audit chain check at start failed", "error", err.Error())
		}
	case !rep.OK:
		attrs := []any{"records", rep.Records}
		if rep.Problem != nil {
			attrs = append(attrs, "kind", rep.Problem.Kind, "seq", rep.Problem.Seq, "detail", rep.Problem.Detail)
		}
		logger.Error("AUDIT CHAIN BROKEN: the audit store was altered; run fhirwall audit verify", attrs...)
	default:
		logger.Info("audit chain verified at start", "records", rep.Records, "unanchored", rep.Unanchored)
	}
}

// budgetExceeded records an agent crossing a blast-radius cap: a warning in
// the log, and when the agent is revoked for it, an AuditEvent of that
// revocation with fhirwall itself as the actor.
func budgetExceeded(log *audit.Log, logger *slog.Logger, autoRevoke bool) func(context.Context, string, fhir.Reason) {
	return func(ctx context.Context, agent string, reason fhir.Reason) {
		logger.Warn("agent crossed a blast-radius cap", "agent", agent, "reason", string(reason), "auto_revoked", autoRevoke && reason == fhir.ReasonPatientBudget)
		if !autoRevoke || reason != fhir.ReasonPatientBudget {
			return
		}
		now := time.Now()
		acc := &audit.Access{
			RequestID: "auto-revoke-" + strconv.FormatInt(now.UnixNano(), 36),
			Start:     now, End: now,
			Agent:         audit.Agent{ID: "fhirwall"},
			Route:         "guard",
			Method:        http.MethodPost,
			Path:          "/admin/revoke",
			Interaction:   "operation",
			ResourceType:  "Agent",
			ResourceID:    agent,
			Decision:      audit.DecisionAllow,
			Reason:        string(reason),
			Status:        http.StatusOK,
			FailureDetail: "agent revoked automatically: patient budget exceeded",
		}
		// Once per agent crossing: worth a synchronous, durable record.
		if err := log.Record(context.WithoutCancel(ctx), acc); err != nil {
			logger.Error("audit of an automatic revocation failed", "agent", agent, "error", err.Error())
		}
	}
}

// auditSinks are the optional copies of each event: JSON lines on stdout
// for log shippers, and an external FHIR audit repository. They never
// replace the local record.
func auditSinks(cfg *policy.Config) []audit.Sink {
	var sinks []audit.Sink
	if cfg.Audit.Stdout {
		sinks = append(sinks, audit.NewJSONLinesSink(os.Stdout, 10000))
	}
	if u := cfg.Audit.ForwardURL; u != "" {
		sinks = append(sinks, audit.NewFHIRSink(u, &http.Client{Timeout: 10 * time.Second}, 10000, 8, time.Second))
	}
	return sinks
}

// revocationsFile is where a single instance without Redis keeps its
// revocations: revocations_file, or revocations.json beside a SQLite audit
// store. "" (a PostgreSQL store without Redis) keeps them in memory only.
func revocationsFile(cfg *policy.Config) string {
	if cfg.RevocationsFile != "" {
		return resolveFile(cfg, cfg.RevocationsFile)
	}
	const p = "sqlite://"
	if dsn := resolveStore(cfg); strings.HasPrefix(dsn, p) {
		return filepath.Join(filepath.Dir(strings.TrimPrefix(dsn, p)), "revocations.json")
	}
	return ""
}

// resolveStore makes a relative sqlite path relative to the config file.
func resolveStore(cfg *policy.Config) string {
	const p = "sqlite://"
	dsn := cfg.Audit.Store
	if len(dsn) > len(p) && dsn[:len(p)] == p && dsn[len(p)] != '/' {
		return p + resolveFile(cfg, dsn[len(p):])
	}
	return dsn
}

func resolveFile(cfg *policy.Config, f string) string {
	if f == "" || filepath.IsAbs(f) || cfg.File == "" {
		return f
	}
	return filepath.Join(filepath.Dir(cfg.File), f)
}

// configPoll is how often watchConfig looks at the configuration file.
const configPoll = 500 * time.Millisecond

// watchConfig reloads on SIGHUP and when the file changes. It notices a
// change by looking (a stat every configPoll) rather than through inotify:
// a watch on the folder, which replaced files (editors, Kubernetes' ..data
// swap) need, reports every write to anything else there too, such as a
// SQLite audit store beside the file, and under load that cost about 3%
// of the gateway's CPU. A change is reloaded once the file has stayed the
// same for one more look, so a file caught half-written is not refused.
// A reload that fails keeps the running configuration.
func watchConfig(ctx context.Context, file string, s *server, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(configPoll)
	defer tick.Stop()
	last, _ := os.Stat(file)
	pending := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload(ctx, file, s, logger, "SIGHUP")
		case <-tick.C:
			cur, err := os.Stat(file)
			switch {
			case err != nil:
				// Missing for a moment while it is replaced: look again.
			case changed(last, cur):
				last, pending = cur, true
			case pending:
				pending = false
				reload(ctx, file, s, logger, "file change")
			}
		}
	}
}

// changed reports whether the file seen as cur is not the one seen as
// last: another file (a replace), another length or another time.
func changed(last, cur os.FileInfo) bool {
	return last == nil || !os.SameFile(last, cur) || !last.ModTime().Equal(cur.ModTime()) || last.Size() != cur.Size()
}

func reload(ctx context.Context, file string, s *server, logger *slog.Logger, why string) {
	cfg, problems := loadConfig(file)
	if len(problems) > 0 {
		logger.Error("reload refused; the running configuration stays", "trigger", why, "problems", problems.Error())
		return
	}
	if cfg.Version == s.gw.Config().Version {
		return
	}
	if err := s.gw.Reload(ctx, cfg); err != nil {
		logger.Error("reload refused; the running configuration stays", "trigger", why, "error", err.Error())
		return
	}
	logger.Info("configuration reloaded", "trigger", why, "policy", cfg.Version)
}
