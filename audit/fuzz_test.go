package audit

import (
	"net/url"
	"testing"
)

// FuzzParseSearch: any query string is either refused with a reason or
// turned into a bounded Query; nothing panics.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		"patient=123", "date=ge2026-11-26&date=lt2026-11-27T10:00:00Z", "agent=a,b&_count=5",
		"outcome=0,4&action=r", "_sort=-date&_cursor=9", "date=sa2026", "date=eb2026-01", "x=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseSearch(v)
		if err != nil {
			return
		}
		if q.Limit < 1 || q.Limit > maxCount || q.After < 0 {
			t.Fatalf("unbounded query %+v from %q", q, raw)
		}
		for _, g := range q.Refs {
			for _, val := range g.Values {
				if val == "" {
					t.Fatalf("empty %s value from %q", g.Key, raw)
				}
			}
		}
	})
}

// FuzzVerifyCheckpoint: no forged string verifies, and none panics.
func FuzzVerifyCheckpoint(f *testing.F) {
	sg, _ := newSigner(testKey)
	good := sg.sign(7, "abc", "gw", t0)
	f.Add(good.JWS, int64(7), "abc")
	f.Add("a.b.c", int64(1), "x")
	f.Fuzz(func(t *testing.T, jws string, seq int64, hash string) {
		err := verifyCheckpoint(sg.pub, Checkpoint{Seq: seq, Hash: hash, JWS: jws})
		if err == nil && (jws != good.JWS || seq != 7 || hash != "abc") {
			t.Fatalf("forged checkpoint verified: %q %d %q", jws, seq, hash)
		}
	})
}
