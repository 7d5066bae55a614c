package masking

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestJSONMasker(t *testing.T) {
	m, err := CompileJSONPaths([]string{"diagnosis", "patient.ssn", "items.#.ssn", `notes.#(kind=="private")#`}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in, want string
		n        int
		err      error
	}{
		{in: `{"id":1,"diagnosis":"flu","patient":{"name":"x","ssn":"123"}}`, want: `{"id":1,"patient":{"name":"x"}}`, n: 2},
		{in: ` {"items":[{"ssn":"1","a":1},{"a":2},{"ssn":"3"}]} `, want: `{"items":[{"a":1},{"a":2},{}]}`, n: 2},
		{in: `{"notes":[{"kind":"private","t":"x"},{"kind":"public","t":"y"}]}`, want: `{"notes":[{"kind":"public","t":"y"}]}`, n: 1},
		{in: `{"di\u0061gnosis":"flu"}`, want: `{}`, n: 1},
		{in: `{"other":1}`, want: `{"other":1}`, n: 0},
		{in: `{"diagnosis":"a","diagnosis":"b"}`, err: ErrDuplicateKey},
		{in: "{\"diagnosis\":\"\xff\"}", err: ErrInvalidUTF8},
		{in: `{"a":1} x`, err: ErrMalformed},
		{in: `"just a string"`, err: ErrMalformed},
		{in: `<xml/>`, err: ErrMalformed},
	}
	for _, tc := range tests {
		got, n, err := m.Mask([]byte(tc.in))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Mask(%s) error = %v, want %v", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want || n != tc.n {
			t.Errorf("Mask(%s) = %s, %d, %v; want %s, %d", tc.in, got, n, err, tc.want, tc.n)
		}
	}
	for _, bad := range []string{"", "a|b", "a.@reverse", "{a,b}", "..0"} {
		if _, err := CompileJSONPaths([]string{bad}, Options{}); err == nil {
			t.Errorf("CompileJSONPaths(%q) accepted", bad)
		}
	}
}

func TestDecodeBody(t *testing.T) {
	const body = `{"resourceType":"Patient"}`
	var gz, zl bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write([]byte(body))
	gw.Close()
	zw := zlib.NewWriter(&zl)
	zw.Write([]byte(body))
	zw.Close()
	tests := []struct {
		enc  string
		in   []byte
		fail bool
	}{
		{"", []byte(body), false},
		{"identity", []byte(body), false},
		{"GZIP", gz.Bytes(), false},
		{"x-gzip", gz.Bytes(), false},
		{"deflate", zl.Bytes(), false},
		{"br", []byte(body), true},
		{"gzip, gzip", gz.Bytes(), true},
		{"compress", []byte(body), true},
		{"gzip", []byte(body), true}, // not gzip at all
	}
	for _, tc := range tests {
		r, err := DecodeBody(tc.enc, bytes.NewReader(tc.in))
		if tc.fail {
			if err == nil {
				if _, err = io.ReadAll(r); err == nil {
					t.Errorf("DecodeBody(%q) accepted", tc.enc)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("DecodeBody(%q): %v", tc.enc, err)
			continue
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != body {
			t.Errorf("DecodeBody(%q) = %q, %v", tc.enc, got, err)
		}
	}
	if _, err := DecodeBody(strings.Repeat("z", 100), nil); err == nil || strings.Contains(err.Error(), strings.Repeat("z", 40)) {
		t.Errorf("unknown encoding: %v (must be refused, detail bounded)", err)
	}
}
