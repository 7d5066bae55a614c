package guard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

func isNil(err error) bool { return errors.Is(err, redis.Nil) }

// revField is the hash field of a revocation: a JSON pair, unambiguous
// whatever characters the ids hold.
func revField(agent, jti string) string {
	b, _ := json.Marshal([2]string{agent, jti}) // strings always marshal
	return string(b)
}

func newVersion() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// redisRevoke stores r and changes the version token in one transaction
// (both keys share the {revocations} slot). The version is random rather
// than a counter so that a Redis restarted empty can never repeat a version
// a replica has cached.
func (g *Guard) redisRevoke(ctx context.Context, r Revocation) error {
	val, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, g.revHashKey(), revField(r.Agent, r.JTI), val)
		p.Set(ctx, g.revVersionKey(), newVersion(), 0)
		return nil
	})
	return err
}

func (g *Guard) redisRestore(ctx context.Context, agent, jti string) error {
	_, err := g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, g.revHashKey(), revField(agent, jti))
		p.Set(ctx, g.revVersionKey(), newVersion(), 0)
		return nil
	})
	return err
}

// redisRepublish writes a replica's revocation set back into a Redis that
// lost it. HSETNX keeps any entry written meanwhile; the new version makes
// every replica reread the merged set.
func (g *Guard) redisRepublish(ctx context.Context, s *revSet) error {
	_, err := g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range s.list() {
			val, err := json.Marshal(r)
			if err != nil {
				return err
			}
			p.HSetNX(ctx, g.revHashKey(), revField(r.Agent, r.JTI), val)
		}
		p.Set(ctx, g.revVersionKey(), newVersion(), 0)
		return nil
	})
	return err
}

// redisLoadRevocations reads the version and the whole set atomically. The
// field, not the value, says who is revoked: a value that does not decode
// still revokes (fail closed), with empty metadata.
func (g *Guard) redisLoadRevocations(ctx context.Context) ([]Revocation, string, error) {
	var ver *redis.StringCmd
	var all *redis.MapStringStringCmd
	_, err := g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		ver = p.Get(ctx, g.revVersionKey())
		all = p.HGetAll(ctx, g.revHashKey())
		return nil
	})
	if err != nil && !isNil(err) {
		return nil, "", err
	}
	rs := make([]Revocation, 0, len(all.Val()))
	for field, val := range all.Val() {
		var id [2]string
		if err := json.Unmarshal([]byte(field), &id); err != nil || id[0] == "" {
			g.m.redisErrors.WithLabelValues("decode").Inc()
			continue // cannot tell whom it names; we never write such fields
		}
		var r Revocation
		if err := json.Unmarshal([]byte(val), &r); err != nil {
			g.m.redisErrors.WithLabelValues("decode").Inc()
		}
		r.Agent, r.JTI = id[0], id[1]
		rs = append(rs, r)
	}
	return rs, ver.Val(), nil
}

// The limit scripts. Times are microseconds; ARGV[1] = 0 means "use the
// Redis server clock" (TIME is allowed in scripts under effect replication,
// the only mode of Redis 7). Each script touches one key, so it is atomic on
// a single node and in a cluster alike.

const luaNow = `
local now = tonumber(ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`

// gcraScript: KEYS[1] = tat; ARGV = now, emission interval, burst.
// Returns 0 when allowed, else the microseconds until a retry can pass.
var gcraScript = redis.NewScript(luaNow + `
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local newtat = tat + interval
local allowat = newtat - burst * interval
if now < allowat then
  return math.max(1, math.ceil(allowat - now))
end
redis.call('SET', KEYS[1], string.format('%.0f', newtat), 'PX', string.format('%.0f', math.ceil((newtat - now) / 1000) + 1000))
return 0
`)

// patientsScript: KEYS[1] = zset; ARGV = now, window, limit, digests...
// Already-seen patients always pass; new ones only if they all fit. Returns
// {admitted 1|0, distinct count after}.
var patientsScript = redis.NewScript(luaNow + `
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
local fresh = 0
for i = 4, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then fresh = fresh + 1 end
end
if fresh > 0 and count + fresh > limit then
  return {0, count}
end
local nows = string.format('%.0f', now)
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], nows, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(window / 1000) + 1000))
return {1, count + fresh}
`)

// patientCountScript: KEYS[1] = zset; ARGV = now, window. Read-only.
var patientCountScript = redis.NewScript(luaNow + `
return redis.call('ZCOUNT', KEYS[1], string.format('%.0f', now - tonumber(ARGV[2])), '+inf')
`)

// bulkScript: KEYS[1] = zset; ARGV = now, window, limit, member. A sliding
// log: exact over any rolling window, and small because bulk caps are small.
var bulkScript = redis.NewScript(luaNow + `
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - window))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[4])
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(window / 1000) + 1000))
return 1
`)

func (g *Guard) redisGCRA(ctx context.Context, agent string, intervalMicros float64, burst int) (retryMicros int64, err error) {
	return gcraScript.Run(ctx, g.rdb, []string{g.agentKey(agent, "rate")}, g.nowMicros(), intervalMicros, burst).Int64()
}

func (g *Guard) redisAdmitPatients(ctx context.Context, agent string, ids []string, limit int) (bool, error) {
	args := make([]any, 0, 3+len(ids))
	args = append(args, g.nowMicros(), patientWindow.Microseconds(), limit)
	for _, id := range ids {
		args = append(args, patientDigest(id))
	}
	res, err := patientsScript.Run(ctx, g.rdb, []string{g.agentKey(agent, "patients")}, args...).Int64Slice()
	if err != nil {
		return false, err
	}
	if len(res) != 2 {
		return false, fmt.Errorf("patient script answered %d values", len(res))
	}
	return res[0] == 1, nil
}

func (g *Guard) redisPatientCount(ctx context.Context, agent string) (int, error) {
	n, err := patientCountScript.Run(ctx, g.rdb, []string{g.agentKey(agent, "patients")}, g.nowMicros(), patientWindow.Microseconds()).Int()
	return n, err
}

func (g *Guard) redisBulkCall(ctx context.Context, agent string, limit int) (bool, error) {
	member := fmt.Sprintf("%s:%d", g.bootID, g.seq.Add(1))
	n, err := bulkScript.Run(ctx, g.rdb, []string{g.agentKey(agent, "bulk")}, g.nowMicros(), bulkWindow.Microseconds(), limit, member).Int()
	return n == 1, err
}
