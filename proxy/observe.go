package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type requestIDKey struct{}

// newRequestID returns 128 random bits in hex. fhirwall never adopts a
// client's request id: the id ties an AuditEvent to its upstream exchange
// and must not be chosen by the agent.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// metrics are the gateway's Prometheus collectors. Labels never carry PHI:
// route names, agent ids, decisions, reason codes and status classes only.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reloads  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fhirwall", Name: "requests_total",
			Help: "Requests by route, agent, decision, reason code and HTTP status.",
		}, []string{"route", "agent", "decision", "reason", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fhirwall", Name: "request_duration_seconds",
			Help:    "Time from request to the end of the response, by route and decision.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "decision"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fhirwall", Name: "config_reloads_total",
			Help: "Configuration reloads by result (ok or failed).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.reloads)
	}
	return m
}

// accessLog is one line per request. It holds no URL, query, body or token:
// paths and queries carry patient identifiers.
type accessLog struct {
	RequestID   string
	Route       string
	Agent       string
	Interaction string
	Type        string
	Decision    string
	Reason      string
	Status      int
	Bytes       int64
	Duration    time.Duration
}

func (m *metrics) observe(log *slog.Logger, a accessLog) {
	status := "0"
	if a.Status > 0 {
		status = strconv.Itoa(a.Status)
	}
	agent := a.Agent
	if agent == "" {
		agent = "unauthenticated"
	}
	m.requests.WithLabelValues(a.Route, agent, a.Decision, a.Reason, status).Inc()
	m.duration.WithLabelValues(a.Route, a.Decision).Observe(a.Duration.Seconds())
	log.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("request_id", a.RequestID),
		slog.String("route", a.Route),
		slog.String("agent", agent),
		slog.String("interaction", a.Interaction),
		slog.String("type", a.Type),
		slog.String("decision", a.Decision),
		slog.String("reason", a.Reason),
		slog.Int("status", a.Status),
		slog.Int64("bytes", a.Bytes),
		slog.Float64("duration_ms", float64(a.Duration.Microseconds())/1000),
	)
}
