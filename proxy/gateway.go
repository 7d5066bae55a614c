package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/guard"
	"github.com/fhirwall/fhirwall/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Deps are the long-lived parts of a gateway that outlive a configuration
// reload: the audit log, the shared guardrail state, the logger and the
// metrics registry. The caller opens and closes them.
type Deps struct {
	// Audit is the audit log. Required: there is no gateway without one.
	Audit *audit.Log
	// Guard holds revocations, rate limits and patient budgets.
	Guard *guard.Guard
	// Logger receives JSON access and error logs; never PHI, never tokens.
	Logger *slog.Logger
	// Registry receives the gateway's metrics and serves /metrics. A nil
	// Registry gets a private one.
	Registry *prometheus.Registry
	// HTTPClient fetches JWKS documents; nil uses a client with timeouts.
	HTTPClient *http.Client
	// TokenCacheSize bounds the verified-token cache: 0 takes the default
	// (10000 tokens), a negative value verifies every token.
	TokenCacheSize int
}

// Gateway is fhirwall's HTTP handler. Its configuration is compiled into an
// immutable runtime; Reload builds a whole new one and swaps it atomically,
// so a request runs start to end under one configuration.
type Gateway struct {
	deps    Deps
	metrics *metrics
	current atomic.Pointer[runtime]
	// completions are audit completion records being written after their
	// response was sent; Close waits for them.
	completions sync.WaitGroup
}

// New compiles cfg and returns a gateway serving it. The error is
// policy.Problems when the configuration cannot be compiled.
func New(ctx context.Context, cfg *policy.Config, deps Deps) (*Gateway, error) {
	if deps.Audit == nil {
		return nil, errors.New("proxy: an audit log is required")
	}
	if deps.Guard == nil {
		return nil, errors.New("proxy: a guard is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	g := &Gateway{deps: deps, metrics: newMetrics(deps.Registry)}
	for _, c := range deps.Audit.Collectors() {
		_ = deps.Registry.Register(c)
	}
	for _, c := range deps.Guard.Collectors() {
		_ = deps.Registry.Register(c)
	}
	rt, err := g.compile(ctx, cfg)
	if err != nil {
		return nil, err
	}
	g.current.Store(rt)
	return g, nil
}

// Reload compiles cfg and, if that succeeds, makes it the running
// configuration. On failure the running configuration stays and the error
// says why.
func (g *Gateway) Reload(ctx context.Context, cfg *policy.Config) error {
	rt, err := g.compile(ctx, cfg)
	if err != nil {
		g.metrics.reloads.WithLabelValues("failed").Inc()
		return err
	}
	old := g.current.Swap(rt)
	g.metrics.reloads.WithLabelValues("ok").Inc()
	if old != nil {
		// Requests in flight keep the old runtime; its JWKS refreshers
		// stop after they had time to finish.
		time.AfterFunc(time.Minute, old.close)
	}
	return nil
}

// Config returns the configuration in force.
func (g *Gateway) Config() *policy.Config { return g.current.Load().cfg }

// ServeHTTP serves one request under the configuration in force.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := g.current.Load()
	ctx := context.WithValue(r.Context(), requestIDKey{}, newRequestID())
	w.Header().Set("X-Request-Id", requestIDFrom(ctx))
	rt.router.ServeHTTP(w, r.WithContext(ctx))
}

// Close waits for audit completions still being written, then stops the
// running configuration's background work. Call it after the HTTP server
// has shut down and before the audit log is closed. The Deps are the
// caller's to close.
func (g *Gateway) Close() {
	g.completions.Wait()
	if rt := g.current.Load(); rt != nil {
		rt.close()
	}
}

func (g *Gateway) metricsHandler() http.Handler {
	return promhttp.HandlerFor(g.deps.Registry, promhttp.HandlerOpts{})
}

var _ http.Handler = (*Gateway)(nil)

// reloadFromFile reloads the configuration from the file it came from. A
// configuration with problems is refused and the running one stays.
func (g *Gateway) reloadFromFile(ctx context.Context) error {
	file := g.Config().File
	cfg, err := policy.Load(file)
	if err != nil {
		return fhir.Wrap(fhir.ReasonRequestInvalid, err, "the configuration file has problems; the running configuration stays")
	}
	if err := g.Reload(ctx, cfg); err != nil {
		return fhir.Wrap(fhir.ReasonRequestInvalid, err, "the configuration file has problems; the running configuration stays")
	}
	return nil
}
