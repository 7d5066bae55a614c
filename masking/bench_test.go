package masking

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// The benchmarks compare, on the same searchset bytes and the same rules,
// the streaming rewriter with io.Copy (the ceiling), a naive encoding/json
// decode-delete-encode, and gjson+sjson per entry. See BENCHMARKS.md.

var benchRules = map[string][]RuleSpec{
	"bench": {
		{Path: "Patient.telecom"},
		{Path: "Patient.address.line"},
		{Path: "Patient.identifier.where(system='http://hl7.org/fhir/sid/us-ssn')"},
		{Path: "Observation.subject.display"},
	},
	// type-wide rules make every resource type relevant (the rewriter-
	// typewide row; the baselines do not implement them)
	"typewide": {{Path: "HumanName"}, {Path: "Reference.display"}},
}

const benchPatient = `{"fullUrl":"http://upstream.internal:9090/fhir/Patient/%[1]d","resource":{"resourceType":"Patient","id":"%[1]d","meta":{"versionId":"1","lastUpdated":"2024-03-01T10:00:00Z"},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Roe %[1]d, %[1]d Main St, Springfield</div>"},"identifier":[{"system":"http://hl7.org/fhir/sid/us-ssn","value":"123-45-%[1]d"},{"system":"urn:mrn","value":"MRN%[1]d"}],"active":true,"name":[{"use":"official","family":"Roe","given":["Jane","Quinn"]}],"telecom":[{"system":"phone","value":"555-01%[1]d","use":"home"},{"system":"email","value":"jane%[1]d@example.org"}],"gender":"female","birthDate":"1970-02-03","address":[{"use":"home","line":["%[1]d Main St","Apt 4"],"city":"Springfield","state":"IL","postalCode":"62701","country":"US"}],"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"Married"}]},"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en-US"}]},"preferred":true}],"managingOrganization":{"reference":"Organization/1","display":"Springfield Clinic"}},"search":{"mode":"match"}}`

const benchObservation = `{"fullUrl":"http://upstream.internal:9090/fhir/Observation/o%[1]d","resource":{"resourceType":"Observation","id":"o%[1]d","meta":{"versionId":"3","lastUpdated":"2024-03-01T10:00:00Z"},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},"subject":{"reference":"Patient/%[1]d","display":"Jane Roe"},"effectiveDateTime":"2024-03-01T10:00:00Z","issued":"2024-03-01T10:05:00Z","performer":[{"reference":"Practitioner/7"}],"valueQuantity":{"value":72,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N"}]}]},"search":{"mode":"include"}}`

// makeSearchset returns a searchset Bundle of about size bytes.
func makeSearchset(size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 4096)
	b.WriteString(`{"resourceType":"Bundle","id":"bench","meta":{"lastUpdated":"2024-03-01T10:00:00Z"},"type":"searchset","total":1000000,"link":[{"relation":"self","url":"http://upstream.internal:9090/fhir/Patient?_revinclude=Observation:subject"},{"relation":"next","url":"http://upstream.internal:9090/fhir?_getpages=abc&_getpagesoffset=20"}],"entry":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if i%2 == 0 {
			fmt.Fprintf(&b, benchPatient, 100000+i)
		} else {
			fmt.Fprintf(&b, benchObservation, 100000+i)
		}
	}
	b.WriteString("]}")
	return b.Bytes()
}

var (
	bench250K  = sync.OnceValue(func() []byte { return makeSearchset(250 << 10) })
	benchLarge = sync.OnceValue(func() []byte {
		mb := 64
		if s := os.Getenv("MASKING_BENCH_MB"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				mb = n
			}
		}
		return makeSearchset(mb << 20)
	})
)

func BenchmarkSearchset250K(b *testing.B) { runBench(b, bench250K()) }

// BenchmarkSearchsetLarge uses MASKING_BENCH_MB megabytes (default 64).
func BenchmarkSearchsetLarge(b *testing.B) { runBench(b, benchLarge()) }

// writeOnly hides io.Discard's ReaderFrom so io.Copy really copies.
type writeOnly struct{ io.Writer }

// readOnly hides bytes.Reader's WriterTo for the same reason.
type readOnly struct{ io.Reader }

func runBench(b *testing.B, body []byte) {
	s, err := Compile(benchRules, Options{UpstreamBase: "http://upstream.internal:9090/fhir", PublicBase: "https://gw.example.org/fhir"})
	if err != nil {
		b.Fatal(err)
	}
	rw, _ := s.Rewriter([]string{"bench"}, nil)
	plain, _ := s.Rewriter(nil, nil)
	wide, _ := s.Rewriter([]string{"bench", "typewide"}, nil)
	cases := []struct {
		name string
		run  func() error
	}{
		{"io.Copy", func() error {
			_, err := io.Copy(writeOnly{io.Discard}, readOnly{bytes.NewReader(body)})
			return err
		}},
		{"naive-encoding-json", func() error { return naiveMask(io.Discard, body) }},
		{"gjson-sjson", func() error { return gjsonMask(io.Discard, body) }},
		{"rewriter", func() error {
			_, err := rw.Rewrite(io.Discard, bytes.NewReader(body))
			return err
		}},
		{"rewriter-typewide", func() error {
			_, err := wide.Rewrite(io.Discard, bytes.NewReader(body))
			return err
		}},
		{"rewriter-no-masks", func() error {
			_, err := plain.Rewrite(io.Discard, bytes.NewReader(body))
			return err
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if c.name == "naive-encoding-json" && len(body) > 300<<20 {
				b.Skip("naive decode of the whole body would need several GB")
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			n := 0
			for b.Loop() {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			// The machine the benchmarks run on is shared: wall-clock MB/s
			// moves with other load, CPU seconds (this process, all
			// threads, GC included) much less.
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(n)*float64(len(body))/1e6/cpu.Seconds(), "cpuMB/s")
			}
		})
	}
}

// cpuTime is the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var redactedCodingValue = map[string]any{"system": RedactedSystem, "code": RedactedCode, "display": "redacted"}

// naiveMask is what most gateways do: decode everything, delete, encode.
func naiveMask(w io.Writer, body []byte) error {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return err
	}
	entries, _ := doc["entry"].([]any)
	for _, e := range entries {
		e, _ := e.(map[string]any)
		if u, ok := e["fullUrl"].(string); ok {
			e["fullUrl"] = "https://gw.example.org/fhir" + u[len("http://upstream.internal:9090/fhir"):]
		}
		r, _ := e["resource"].(map[string]any)
		masked := false
		switch r["resourceType"] {
		case "Patient":
			delete(r, "telecom")
			if addrs, ok := r["address"].([]any); ok {
				for _, a := range addrs {
					delete(a.(map[string]any), "line")
				}
			}
			if ids, ok := r["identifier"].([]any); ok {
				kept := ids[:0]
				for _, id := range ids {
					if id.(map[string]any)["system"] != "http://hl7.org/fhir/sid/us-ssn" {
						kept = append(kept, id)
					}
				}
				r["identifier"] = kept
			}
			masked = true
		case "Observation":
			if s, ok := r["subject"].(map[string]any); ok {
				delete(s, "display")
				masked = true
			}
		}
		if masked {
			delete(r, "text")
			meta, _ := r["meta"].(map[string]any)
			if meta == nil {
				meta = map[string]any{}
				r["meta"] = meta
			}
			sec, _ := meta["security"].([]any)
			meta["security"] = append(sec, redactedCodingValue)
		}
	}
	return json.NewEncoder(w).Encode(doc)
}

const redactedCodingRaw = `{"system":"` + RedactedSystem + `","code":"` + RedactedCode + `","display":"redacted"}`

// gjsonMask walks the entries with gjson and edits each resource with
// sjson, writing the envelope around them.
func gjsonMask(w io.Writer, body []byte) error {
	out := make([]byte, 0, 64<<10)
	out = append(out, `{"resourceType":"Bundle"`...)
	var err error
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "resourceType":
			return true
		case "entry":
			out = append(out, `,"entry":[`...)
			n := 0
			v.ForEach(func(_, e gjson.Result) bool {
				if n > 0 {
					out = append(out, ',')
				}
				n++
				raw := []byte(e.Raw)
				if u := e.Get("fullUrl"); u.Exists() {
					raw, err = sjson.SetBytes(raw, "fullUrl", "https://gw.example.org/fhir"+u.Str[len("http://upstream.internal:9090/fhir"):])
				}
				res := gjson.GetBytes(raw, "resource")
				rb := []byte(res.Raw)
				masked := false
				switch res.Get("resourceType").Str {
				case "Patient":
					rb, _ = sjson.DeleteBytes(rb, "telecom")
					for i := len(res.Get("address").Array()) - 1; i >= 0; i-- {
						rb, _ = sjson.DeleteBytes(rb, "address."+strconv.Itoa(i)+".line")
					}
					ids := res.Get("identifier").Array()
					for i := len(ids) - 1; i >= 0; i-- {
						if ids[i].Get("system").Str == "http://hl7.org/fhir/sid/us-ssn" {
							rb, _ = sjson.DeleteBytes(rb, "identifier."+strconv.Itoa(i))
						}
					}
					masked = true
				case "Observation":
					rb, _ = sjson.DeleteBytes(rb, "subject.display")
					masked = true
				}
				if masked {
					rb, _ = sjson.DeleteBytes(rb, "text")
					rb, _ = sjson.SetRawBytes(rb, "meta.security.-1", []byte(redactedCodingRaw))
				}
				raw, err = sjson.SetRawBytes(raw, "resource", rb)
				out = append(out, raw...)
				if len(out) > 64<<10 {
					if _, werr := w.Write(out); werr != nil {
						err = werr
						return false
					}
					out = out[:0]
				}
				return err == nil
			})
			out = append(out, ']')
		default:
			out = append(out, ',')
			out = append(out, k.Raw...)
			out = append(out, ':')
			out = append(out, v.Raw...)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	out = append(out, '}')
	_, err = w.Write(out)
	return err
}

// The rewriter's memory does not grow with the body: a 48 MB searchset
// streamed from a reader that never holds it allocates a small fraction of
// that.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("streams 48 MB; allocation totals are not meaningful under -race")
	}
	s, _ := Compile(benchRules, Options{})
	rw, _ := s.Rewriter([]string{"bench"}, nil)
	const entries = 40000
	src := &generatedBundle{n: entries}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var out countingWriter
	sum, err := rw.Rewrite(&out, src)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Resources) != entries+1 || src.produced < 40<<20 {
		t.Fatalf("resources %d, input %d bytes", len(sum.Resources), src.produced)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("input %d MB, output %d MB, allocated %d KB", src.produced>>20, out.n>>20, alloc>>10)
	// The Summary itself grows with the entry count (its ResourceRefs and
	// their spans, under 150 bytes per resource all told); everything else
	// is a fixed set of buffers.
	if alloc > 2<<20+150*entries {
		t.Fatalf("allocated %d bytes for a %d byte body", alloc, src.produced)
	}
	if !json.Valid(out.last) && out.n == 0 {
		t.Fatal("no output")
	}
}

// generatedBundle produces a searchset of n entries on the fly.
type generatedBundle struct {
	n, i     int
	pending  []byte
	buf      []byte
	produced int
	closed   bool
}

func (g *generatedBundle) Read(p []byte) (int, error) {
	for len(g.pending) == 0 {
		switch {
		case g.i == 0 && !g.closed && g.produced == 0:
			g.pending = []byte(`{"resourceType":"Bundle","type":"searchset","entry":[`)
		case g.i < g.n:
			g.buf = g.buf[:0]
			if g.i > 0 {
				g.buf = append(g.buf, ',')
			}
			g.buf = fmt.Appendf(g.buf, benchPatient, g.i)
			g.pending = g.buf
			g.i++
		case !g.closed:
			g.pending = []byte("]}")
			g.closed = true
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	g.produced += n
	return n, nil
}

type countingWriter struct {
	n    int
	last []byte
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}

// Allocations per Rewrite do not grow with the number of entries (only the
// Summary's slices double, logarithmically), for every rewriter variant.
func TestAllocsDoNotGrowWithBody(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	s, _ := Compile(benchRules, Options{UpstreamBase: "http://upstream.internal:9090/fhir", PublicBase: "https://gw.example.org/fhir"})
	small, large := makeSearchset(64<<10), makeSearchset(1<<20)
	for _, profiles := range [][]string{nil, {"bench"}, {"bench", "typewide"}} {
		rw, _ := s.Rewriter(profiles, nil)
		allocs := func(body []byte) float64 {
			return testing.AllocsPerRun(5, func() {
				if _, err := rw.Rewrite(io.Discard, bytes.NewReader(body)); err != nil {
					t.Fatal(err)
				}
			})
		}
		a, b := allocs(small), allocs(large)
		if b > a+12 {
			t.Errorf("profiles %v: %.0f allocs for 64 KiB, %.0f for 1 MiB", profiles, a, b)
		}
	}
}
