package guard

import (
	"context"
	"math"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// AllowRequest spends one request of the agent's rate limit
// (l.RequestsPerSecond with l.Burst), shared by every replica: GCRA, one
// atomic Lua script in Redis. It returns nil when the request may proceed;
// otherwise an *fhir.Error rate-limited and how long until a retry can pass
// (for Retry-After). A zero rate means unlimited; a negative or NaN rate
// refuses everything.
//
// When Redis cannot be reached the request is refused with
// ReasonUnavailable, unless Options.FailOpenLimits is set: then this replica
// enforces the limit alone in memory (so N replicas together admit up to N
// times the rate until Redis is back).
func (g *Guard) AllowRequest(ctx context.Context, agent string, l Limits) (retryAfter time.Duration, err error) {
	rate := l.RequestsPerSecond
	switch {
	case rate == 0:
		return 0, nil
	case !(rate > 0) || l.Burst < 0: // negative or NaN: a broken limit never widens
		return time.Second, g.refuse(fhir.Errorf(fhir.ReasonRateLimited, "the agent's rate limit is invalid"))
	}
	interval := time.Duration(math.Max(float64(time.Second)/rate, float64(time.Microsecond)))
	burst := l.burst()

	if g.rdb != nil {
		var micros int64
		rerr := g.redisCall(ctx, func(ctx context.Context) (err error) {
			micros, err = g.redisGCRA(ctx, agent, float64(interval)/float64(time.Microsecond), burst)
			return err
		})
		if rerr == nil {
			retryAfter = time.Duration(micros) * time.Microsecond
			return retryAfter, g.rateRefusal(retryAfter)
		}
		if !g.opts.FailOpenLimits {
			return time.Second, g.unavailable("rate", rerr)
		}
		g.m.redisErrors.WithLabelValues("rate").Inc()
		g.m.failOpen.Inc()
	}
	retryAfter = g.mem.gcra(agent, g.now(), interval, burst)
	return retryAfter, g.rateRefusal(retryAfter)
}

func (g *Guard) rateRefusal(retryAfter time.Duration) error {
	if retryAfter <= 0 {
		return nil
	}
	return g.refuse(fhir.Errorf(fhir.ReasonRateLimited, "rate limit reached; retry after %v", retryAfter.Round(time.Millisecond)))
}
