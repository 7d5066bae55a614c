package guard

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	refusals           *prometheus.CounterVec
	redisErrors        *prometheus.CounterVec
	failOpen           prometheus.Counter
	budgetExceeded     prometheus.Counter
	autoRevokeFailures prometheus.Counter
	republished        prometheus.Counter
	fileErrors         *prometheus.CounterVec
	unpersisted        prometheus.GaugeFunc
	cacheAge           prometheus.GaugeFunc
	revocations        prometheus.GaugeFunc
	redisUp            prometheus.GaugeFunc
}

func newMetrics(g *Guard) *metrics {
	return &metrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhirwall_guard_refusals_total",
			Help: "Requests refused by the guard, by reason code.",
		}, []string{"reason"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhirwall_guard_redis_errors_total",
			Help: "Failed Redis calls of the guard, by operation.",
		}, []string{"op"}),
		failOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fhirwall_guard_rate_fail_open_total",
			Help: "Rate-limit decisions taken by this replica alone because Redis was unreachable (FailOpenLimits).",
		}),
		budgetExceeded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fhirwall_guard_patient_budget_exceeded_total",
			Help: "Disclosures refused because the agent reached its distinct-patient budget.",
		}),
		autoRevokeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fhirwall_guard_auto_revoke_failures_total",
			Help: "Automatic revocations after a budget breach that could not be stored.",
		}),
		republished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fhirwall_guard_revocations_republished_total",
			Help: "Times this replica wrote its revocation set back into a Redis, or a state file, that had lost it.",
		}),
		fileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhirwall_guard_state_file_errors_total",
			Help: "Failed reads or writes of the revocation state file, by operation.",
		}, []string{"op"}),
		unpersisted: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fhirwall_guard_revocations_unpersisted",
			Help: "Revocations in force in this process that the state file does not hold yet (a restart would lose them).",
		}, func() float64 { return float64(g.unpersisted()) }),
		cacheAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fhirwall_guard_revocation_cache_age_seconds",
			Help: "Time since the revocation set was last read from Redis or the state file (0 in memory without one); above the local cache TTL every agent is refused.",
		}, func() float64 { return g.cacheAge().Seconds() }),
		revocations: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fhirwall_guard_revocations",
			Help: "Agent and token revocations in this replica's revocation set.",
		}, func() float64 {
			s := g.rev.Load()
			return float64(len(s.agents) + len(s.tokens))
		}),
		redisUp: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fhirwall_guard_redis_up",
			Help: "1 if the last revocation poll reached Redis (always 1 in memory); while 0, limit checks fail without calling Redis.",
		}, func() float64 {
			if g.rdb == nil || g.redisUp.Load() {
				return 1
			}
			return 0
		}),
	}
}

// Collectors returns the guard's metrics for the caller to register; the
// guard never registers them globally, so several guards (tests, reloads)
// can coexist.
func (g *Guard) Collectors() []prometheus.Collector {
	m := g.m
	return []prometheus.Collector{m.refusals, m.redisErrors, m.failOpen, m.budgetExceeded, m.autoRevokeFailures, m.republished, m.fileErrors, m.unpersisted, m.cacheAge, m.revocations, m.redisUp}
}
