package audit

import "github.com/prometheus/client_golang/prometheus"

// metrics wraps the critical calls: how long an access waits for its record
// to be durable, and how often that fails. Label values are fixed sets.
type metrics struct {
	writeSeconds   *prometheus.HistogramVec
	writeFailures  *prometheus.CounterVec
	batchRecords   prometheus.Histogram
	commitSeconds  *prometheus.HistogramVec
	checkpointFail prometheus.Counter
	indexFailures  prometheus.Counter
	sinkDropped    *prometheus.CounterVec
	sinkFailures   *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fhirwall_audit_write_duration_seconds",
			Help:    "Time from submitting an audit record to it being durable (or failing), by record kind.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"kind"}),
		writeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhirwall_audit_write_failures_total",
			Help: "Audit records that could not be made durable, by record kind.",
		}, []string{"kind"}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fhirwall_audit_batch_records",
			Help:    "Records committed per group-commit transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		commitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fhirwall_audit_store_transaction_seconds",
			Help:    "Duration of the writer's store transactions: chain (group commit, durable) and index (search rows, not fsynced).",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, 1},
		}, []string{"kind"}),
		checkpointFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fhirwall_audit_checkpoint_failures_total",
			Help: "Signed checkpoints that could not be written.",
		}),
		indexFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fhirwall_audit_index_failures_total",
			Help: "Search index transactions that failed (the records are durable; their index rows are retried, or rebuilt at the next start).",
		}),
		sinkDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhirwall_audit_forward_dropped_total",
			Help: "Events not forwarded because the sink's queue was full.",
		}, []string{"sink"}),
		sinkFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhirwall_audit_forward_failures_total",
			Help: "Events a sink gave up on after its retries.",
		}, []string{"sink"}),
	}
}

// Collectors returns the audit metrics for the caller to register; the
// package never registers on the global registry.
func (l *Log) Collectors() []prometheus.Collector {
	m := l.metrics
	return []prometheus.Collector{m.writeSeconds, m.writeFailures, m.batchRecords, m.commitSeconds, m.checkpointFail, m.indexFailures, m.sinkDropped, m.sinkFailures}
}
