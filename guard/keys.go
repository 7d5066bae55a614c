package guard

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Redis key layout (P = Options.KeyPrefix, A = escaped agent id):
//
//	P{revocations}        hash: field JSON [agent, jti] -> Revocation JSON, no TTL
//	P{revocations}:ver    string: random token changed with every write
//	P{A}:rate             string: GCRA theoretical arrival time (µs)
//	P{A}:patients         zset: patient digest -> last disclosure (µs)
//	P{A}:bulk             zset: call id -> time of the call (µs)
//
// The braces are Redis cluster hash tags: the two revocation keys share a
// slot, and so do all keys of one agent.

func (g *Guard) revHashKey() string    { return g.opts.KeyPrefix + "{revocations}" }
func (g *Guard) revVersionKey() string { return g.opts.KeyPrefix + "{revocations}:ver" }

func (g *Guard) agentKey(agent, kind string) string {
	return g.opts.KeyPrefix + "{" + escapeTag(agent) + "}:" + kind
}

// escapeTag makes an agent id safe inside a hash tag: a brace in the id
// would end the tag early and could split one agent's keys across slots.
func escapeTag(s string) string {
	if !strings.ContainsAny(s, "{}%") {
		return s
	}
	r := strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")
	return r.Replace(s)
}

// patientDigest pseudonymises a patient id before it is stored in Redis, so
// the shared store does not hold the list of patients each agent saw in
// clear text. It is not anonymisation: ids can be enumerated.
func patientDigest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawStdEncoding.EncodeToString(sum[:16])
}

// newBootID names this Guard instance in bulk-call members.
func newBootID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
