package masking

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestValidator(t *testing.T) {
	many := func(n int, dupAt int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			k := i
			if i == dupAt {
				k = 0
			}
			b.WriteString(`"k` + strings.Repeat("x", k%7) + string(rune('a'+k/7%26)) + string(rune('a'+k/182)) + `":1`)
		}
		b.WriteString("}")
		return b.String()
	}
	tests := []struct {
		in   string
		want error // nil = valid
	}{
		{`{}`, nil},
		{`{"a":[1,-0.5e+3,true,false,null,"x\u00e9\ud83d\ude00\n"]}`, nil},
		{"{\"a\":\"\xc3\xa9\xf0\x9f\x98\x80\"}", nil},
		{many(100, -1), nil},
		{many(100, 60), ErrDuplicateKey},
		{many(10, 5), ErrDuplicateKey},
		{`{"a":1,"\u0061":2}`, ErrDuplicateKey},
		{`{"subject":1,"Subject":2}`, ErrDuplicateKey},
		{`{"status":1,"\u017ftatus":2}`, ErrDuplicateKey}, // long s folds to s
		{`{"kind":1,"\u212aind":2}`, ErrDuplicateKey},     // Kelvin sign folds to k
		{`{"a_":1,"A\u007f":2}`, nil},
		{many(100, -1)[:len(many(100, -1))-1] + `,"KAA":1}`, ErrDuplicateKey},
		{`{"a":{"b":1},"c":{"b":1}}`, nil},
		{`{"a":1,}`, ErrMalformed},
		{`[1,]`, ErrMalformed},
		{`{"a" 1}`, ErrMalformed},
		{`{'a':1}`, ErrMalformed},
		{`{"a":01}`, ErrMalformed},
		{`{"a":1.}`, ErrMalformed},
		{`{"a":.5}`, ErrMalformed},
		{`{"a":+1}`, ErrMalformed},
		{`{"a":NaN}`, ErrMalformed},
		{`{"a":tru}`, ErrMalformed},
		{"{\"a\":\"\t\"}", ErrMalformed},
		{`{"a":"\x"}`, ErrMalformed},
		{`{"a":"\u12"}`, ErrMalformed},
		{`{"a":"\udc00"}`, ErrMalformed},
		{`{"a":"\ud800x"}`, ErrMalformed},
		{`{"a":"\ud800\u0041"}`, ErrMalformed},
		{"{\"a\":\"\xff\"}", ErrInvalidUTF8},
		{"{\"a\":\"\xed\xa0\x80\"}", ErrInvalidUTF8}, // UTF-8 encoded surrogate
		{"{\"a\":\"\xc0\xaf\"}", ErrInvalidUTF8},     // overlong
		{strings.Repeat("[", 10) + strings.Repeat("]", 10), nil},
		{strings.Repeat("[", 11) + strings.Repeat("]", 11), ErrTooDeep},
		{`{"a":1`, errShort},
		{`{"a":"b`, errShort},
		{`{"a":12`, errShort},
		{`{"a":tr`, errShort},
		{"{\"a\":\"\xc3", errShort},
		{`{"a":"\ud800\u`, errShort},
	}
	for _, tc := range tests {
		v := validator{maxDepth: 10}
		n, err := v.validate([]byte(tc.in), 0)
		if !errors.Is(err, tc.want) && err != tc.want {
			t.Errorf("validate(%.40q) = %v, want %v", tc.in, err, tc.want)
			continue
		}
		if err == nil {
			if n != len(tc.in) {
				t.Errorf("validate(%.40q) consumed %d of %d", tc.in, n, len(tc.in))
			}
			if !json.Valid([]byte(tc.in)) {
				t.Errorf("accepted %.40q, which encoding/json rejects", tc.in)
			}
		}
	}
}

// Reading the body in pieces of any size gives the same output as reading
// it whole: refills restart validation correctly.
func TestRewriteChunkingInvariant(t *testing.T) {
	s := testSet(t, testOptions)
	rw, _ := s.Rewriter([]string{"contact", "typewide", "hash"}, nil)
	for _, tc := range goldenCases() {
		if tc.opts != nil {
			continue
		}
		var whole bytes.Buffer
		_, errWhole := rw.Rewrite(&whole, strings.NewReader(tc.in))
		for _, n := range []int{1, 2, 3, 5, 64, 1000} {
			var part bytes.Buffer
			_, err := rw.Rewrite(&part, &trickle{s: tc.in, n: n})
			if (err == nil) != (errWhole == nil) || !bytes.Equal(part.Bytes(), whole.Bytes()) {
				t.Fatalf("%s: chunk %d gives %v / %s, whole gives %v / %s", tc.name, n, err, part.Bytes(), errWhole, whole.Bytes())
			}
		}
	}
}

// A member name that only differs in case from an element is refused: Go's
// encoding/json would decode "Telecom" into a struct's Telecom field.
func TestCaseFoldedNamesRefused(t *testing.T) {
	s := testSet(t, testOptions)
	rw, _ := s.Rewriter([]string{"contact"}, nil)
	for _, in := range []string{
		`{"resourceType":"Patient","Telecom":[{"value":"555"}]}`,
		`{"resourceType":"Patient","TELECOM":[{"value":"555"}]}`,
		`{"resourceType":"Patient","address":[{"Line":["x"]}]}`,
		`{"resourceType":"Patient","_BirthDate":{}}`,
		`{"resourceType":"Bundle","Entry":[]}`,
		`{"resourceType":"Patient","ResourceType":"Patient"}`,
		`{"resourceType":"Observation","subject":{"reference":"Patient/1"},"Subject":{"reference":"Patient/2"}}`,
		`{"resourceType":"Observation","contained":[{"resourceType":"Patient","Telecom":[]}]}`,
		`{"resourceType":"Patient","addre\u017fs":[{"line":["x"]}]}`, // long s: Go's encoding/json reads it as address
		`{"resourceType":"Patient","_birthDat\u0045":{}}`,
		`{"resourceType":"Patient","tel\u0000ecom":[]}`,
		`{"resourceType":"Patient","identifier":[{"system":"urn:\u0000x"}]}`,
	} {
		var out bytes.Buffer
		if _, err := rw.Rewrite(&out, strings.NewReader(in)); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDuplicateKey) {
			t.Errorf("Rewrite(%s) = %v, want a refusal", in, err)
		}
	}
}

// Escaped names come out canonical, so every parser reads the same name.
func TestEscapedNamesCanonical(t *testing.T) {
	s := testSet(t, testOptions)
	rw, _ := s.Rewriter(nil, nil)
	var out bytes.Buffer
	in := `{"resourceType":"Observation","st\u0061tus":"final","code":{"t\u0065xt":"x"},"note":[{"t\u0065xt":"\u0041"}],"x\"y":1}`
	if _, err := rw.Rewrite(&out, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[{"text":"\u0041"}],"x\"y":1}`
	if out.String() != want {
		t.Fatalf("got  %s\nwant %s", out.String(), want)
	}
}
