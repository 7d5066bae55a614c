package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Problem kinds reported by Verify. They are stable codes.
const (
	ProblemHash       = "hash-mismatch"      // the record's bytes changed
	ProblemLink       = "prev-mismatch"      // the record does not follow its predecessor (deleted, swapped or inserted)
	ProblemGap        = "seq-gap"            // a sequence number is missing (deleted)
	ProblemOrder      = "seq-order"          // sequence numbers go backwards or repeat
	ProblemTruncated  = "truncated"          // the chain ends before a signed checkpoint
	ProblemCheckpoint = "checkpoint-invalid" // a checkpoint's signature or payload is wrong
	ProblemMismatch   = "checkpoint-mismatch"
	ProblemBody       = "body-unreadable" // an event body is not an AuditEvent
	ProblemIndex      = "index-mismatch"  // the search index disagrees with the hashed body
)

// Problem is the first thing wrong with the chain.
type Problem struct {
	Kind   string `json:"kind"`
	Seq    int64  `json:"seq"` // the first record that cannot be trusted
	Detail string `json:"detail"`
}

// CheckpointInfo describes a verified checkpoint.
type CheckpointInfo struct {
	Seq     int64     `json:"seq"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
}

// VerifyReport is the result of Verify. OK is true only if Problem is nil.
type VerifyReport struct {
	OK          bool     `json:"ok"`
	Records     int64    `json:"records"`
	Head        Head     `json:"head"`
	Problem     *Problem `json:"problem,omitempty"`
	Checkpoints int      `json:"checkpoints"`
	// LastGoodCheckpoint is the latest checkpoint that is validly signed and
	// matches the chain before any problem: everything up to its Seq is
	// proven intact.
	LastGoodCheckpoint *CheckpointInfo `json:"lastGoodCheckpoint,omitempty"`
	// Unanchored counts the records after the last good checkpoint; they
	// could have been truncated (or, with the key, rewritten) undetected.
	Unanchored int64 `json:"unanchored"`
	// Unindexed counts events past their gateway's index mark, not yet
	// in the search index (written moments ago, or by a gateway that
	// stopped before indexing them: it indexes them when it starts).
	Unindexed int64 `json:"unindexed"`
}

// Verify walks the whole chain: every seq follows its predecessor, every
// hash matches its bytes, every prev matches the predecessor's hash, every
// event's search index matches its body, every checkpoint is validly
// signed by this log's key and matches the record at its seq, and the chain
// does not end before the latest checkpoint. It reports the first problem.
//
// Limit: records written after the latest checkpoint can be removed from
// the tail without detection (see Options.CheckpointEvery); an attacker who
// deletes all checkpoints too is detected only as "no checkpoint" (Records >
// 0 with Checkpoints == 0 and Unanchored == Records).
func (l *Log) Verify(ctx context.Context) (VerifyReport, error) {
	return verifyStore(ctx, l.store, l.signer.pub)
}

func verifyStore(ctx context.Context, st Store, pub ed25519.PublicKey) (VerifyReport, error) {
	var rep VerifyReport
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return rep, err
	}
	rep.Checkpoints = len(cps)
	bySeq := map[int64]Checkpoint{}
	var firstBadCP *Problem
	for _, cp := range cps {
		if err := verifyCheckpoint(pub, cp); err != nil {
			if firstBadCP == nil {
				firstBadCP = &Problem{Kind: ProblemCheckpoint, Seq: cp.Seq, Detail: fmt.Sprintf("checkpoint at seq %d: %v", cp.Seq, err)}
			}
			continue
		}
		bySeq[cp.Seq] = cp
	}
	marks, err := st.IndexMarks(ctx)
	if err != nil {
		return rep, err
	}
	var prev Head
	fail := func(p Problem) error {
		rep.Problem = &p
		return errStop
	}
	var lastGood *CheckpointInfo
	err = st.Scan(ctx, 1, func(r *Record) error {
		switch {
		case r.Seq <= prev.Seq:
			return fail(Problem{Kind: ProblemOrder, Seq: r.Seq, Detail: fmt.Sprintf("seq %d after %d", r.Seq, prev.Seq)})
		case r.Seq != prev.Seq+1:
			return fail(Problem{Kind: ProblemGap, Seq: prev.Seq + 1, Detail: fmt.Sprintf("records %d..%d missing", prev.Seq+1, r.Seq-1)})
		case r.Prev != prev.Hash:
			return fail(Problem{Kind: ProblemLink, Seq: r.Seq, Detail: "prev does not match the hash of the record before"})
		case RecordHash(r) != r.Hash:
			return fail(Problem{Kind: ProblemHash, Seq: r.Seq, Detail: "stored hash does not match the record's bytes"})
		}
		if r.recordedUS != r.Recorded.UnixMicro() {
			return fail(Problem{Kind: ProblemIndex, Seq: r.Seq, Detail: "date index differs from the recorded time"})
		}
		if r.Kind == KindEvent {
			ev, err := fm.UnmarshalAuditEvent(r.Body)
			if err != nil {
				return fail(Problem{Kind: ProblemBody, Seq: r.Seq, Detail: err.Error()})
			}
			// Every value of the event must be findable: a row
			// deleted or rewritten hides the access from searches. Past
			// its source's index mark an event may not be (fully)
			// indexed yet: the index follows the chain in sorted
			// chunks. A row too many cannot hide anything (Search
			// checks each candidate's body), so is not looked for.
			keys := indexKeys(refsOf(&ev))
			n, err := st.IndexedKeys(ctx, r.Seq, keys)
			if err != nil {
				return err
			}
			switch {
			case n == len(keys):
			case r.Seq > indexedUpTo(marks, r.Source):
				rep.Unindexed++
			default:
				return fail(Problem{Kind: ProblemIndex, Seq: r.Seq, Detail: "search index rows differ from the event"})
			}
		}
		if cp, ok := bySeq[r.Seq]; ok {
			if cp.Hash != r.Hash {
				return fail(Problem{Kind: ProblemMismatch, Seq: r.Seq, Detail: "record differs from the signed checkpoint"})
			}
			lastGood = &CheckpointInfo{Seq: cp.Seq, Hash: cp.Hash, Created: cp.Created}
		}
		prev = Head{Seq: r.Seq, Hash: r.Hash}
		rep.Records++
		return nil
	})
	if err != nil && err != errStop {
		return rep, err
	}
	rep.Head = prev
	rep.LastGoodCheckpoint = lastGood
	if rep.Problem == nil && firstBadCP != nil {
		rep.Problem = firstBadCP
	}
	if rep.Problem == nil {
		// Truncation: a validly signed checkpoint beyond the end.
		for _, cp := range cps {
			if _, ok := bySeq[cp.Seq]; ok && cp.Seq > prev.Seq {
				rep.Problem = &Problem{Kind: ProblemTruncated, Seq: prev.Seq + 1,
					Detail: fmt.Sprintf("chain ends at seq %d but a checkpoint signs seq %d", prev.Seq, cp.Seq)}
				break
			}
		}
	}
	if lastGood != nil {
		rep.Unanchored = prev.Seq - lastGood.Seq
	} else {
		rep.Unanchored = prev.Seq
	}
	rep.OK = rep.Problem == nil
	return rep, nil
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}
