// Package guard owns fhirwall's per-agent guardrails on shared state: the kill
// switch (agent and token revocation), the request rate limit, the
// distinct-patient budget (blast radius), the per-response resource cap and
// the daily bulk-call cap.
//
// State lives in process memory for a single instance, or in Redis (go-redis
// v9, single node or cluster) when several replicas must agree. A single
// instance can also keep its revocation set in Options.StateFile, so that
// revocations survive a restart and another process (the CLI) can revoke in
// the running one; its rate, budget and bulk-call counters stay in memory
// and restart empty. Every limit
// update is one Lua script (EVALSHA) on one key, and a revocation one
// MULTI/EXEC on two keys sharing the {revocations} hash tag, so replicas
// never race each other and cluster slots are never crossed; per-agent keys
// carry the agent in a hash tag too. Each replica keeps a snapshot of the
// revocation set, refreshed every Options.RevocationPoll, so CheckRevoked
// never waits for Redis.
//
// The rule when Redis cannot be reached is fail closed:
//
//   - revocation checks use the replica's last synchronised revocation set for
//     at most Options.LocalCacheTTL after the last successful sync (a known
//     revoked agent is refused whatever the age); beyond that every agent is
//     refused with ReasonUnavailable;
//   - the patient budget and the bulk-call cap refuse with ReasonUnavailable;
//   - the rate limit refuses too, unless Options.FailOpenLimits is set, in
//     which case each replica enforces the limit on its own in memory.
//
// While the revocation poller cannot reach Redis, limit checks fail at once
// instead of each waiting for Options.Timeout. Ready and the metrics from
// Collectors make each of these states visible.
//
// Revocations are stored in Redis without expiry; for them to survive a
// Redis restart, run Redis with persistence (appendonly yes) and an
// eviction policy that never evicts keys without a TTL (noeviction or a
// volatile-* policy). As a second line, a replica that finds the revocation
// set gone (its version key missing) writes back the revocations it knows.
//
// With a StateFile, a Revoke whose write fails is still enforced in this
// process (and returns an error wrapping ErrNotPersisted, shows in Ready and
// in the metrics, and is retried at every poll); a Restore whose write fails
// lifts nothing. An unreadable or corrupt file stops New, and, once running,
// is treated like an unreachable Redis: the last good set is kept for
// LocalCacheTTL, then every agent is refused. Deleting the file while a
// gateway runs does not lift its revocations: the gateway writes them back.
//
// The package must never log, never hold patient identifiers in clear text
// outside process memory (Redis holds a SHA-256 digest of each patient id),
// never decide scopes or policy, and never import any fhirwall package other
// than fhir.
package guard
