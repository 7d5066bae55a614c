package masking

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// The validator skips name comparisons when an object's seen-set says no
// earlier name can collide. Random objects whose names collide often (a
// tiny alphabet, case variants, escapes, non-ASCII fold partners, past the
// linear limit) must get exactly the verdict of comparing every pair of
// decoded names under case folding.
func TestValidatorDuplicateNamesRandom(t *testing.T) {
	// each piece: as written in JSON, and decoded
	pieces := [][2]string{
		{"a", "a"}, {"A", "A"}, {"s", "s"}, {"S", "S"}, {"k", "k"}, {"K", "K"},
		{"_", "_"}, {"@", "@"}, {"`", "`"}, {"\x7f", "\x7f"}, {"1", "1"},
		{`\u0061`, "a"}, {`\u0041`, "A"}, {`\u017f`, "\u017f"}, {"\u017f", "\u017f"},
		{`\u212a`, "\u212a"}, {"\u212a", "\u212a"}, {"é", "é"}, {"É", "É"}, {`\u00e9`, "é"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var dups, clean int
	for range 20000 {
		n := 2 + rng.IntN(5)
		if rng.IntN(10) == 0 {
			n = 20 + rng.IntN(15) // around maxLinearKeys
		}
		var b strings.Builder
		b.WriteString("{")
		seen := map[string]bool{}
		wantDup := false
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			var raw, dec strings.Builder
			for range 1 + rng.IntN(2) {
				p := pieces[rng.IntN(len(pieces))]
				raw.WriteString(p[0])
				dec.WriteString(p[1])
			}
			if n > 8 {
				// long objects: mostly distinct names, so the verdict is
				// not always "duplicate"
				raw.WriteString(string(rune('a' + i%26)))
				dec.WriteString(string(rune('a' + i%26)))
			}
			fk := foldKey([]byte(dec.String()))
			wantDup = wantDup || seen[fk]
			seen[fk] = true
			b.WriteString(`"` + raw.String() + `":` + `{"x":1}`)
		}
		b.WriteString("}")
		in := b.String()
		if !json.Valid([]byte(in)) {
			t.Fatalf("test bug: %q is not JSON", in)
		}
		v := validator{maxDepth: 10}
		_, err := v.validate([]byte(in), 0)
		switch {
		case wantDup && !errors.Is(err, ErrDuplicateKey):
			t.Fatalf("validate(%q) = %v, want a duplicate", in, err)
		case !wantDup && err != nil:
			t.Fatalf("validate(%q) = %v, want nil", in, err)
		}
		if wantDup {
			dups++
		} else {
			clean++
		}
	}
	if dups < 1000 || clean < 1000 {
		t.Fatalf("unbalanced cases: %d duplicates, %d clean", dups, clean)
	}
}
