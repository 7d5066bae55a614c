package masking

import "testing"

// BenchmarkValidate measures the validator alone (the first half of every
// rewrite) on the ~250 KB searchset.
func BenchmarkValidate(b *testing.B) {
	body := bench250K()
	v := validator{maxDepth: DefaultMaxDepth}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0, n := cpuTime(), 0
	for b.Loop() {
		if _, err := v.validate(body, 0); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(n)*float64(len(body))/1e6/cpu.Seconds(), "cpuMB/s")
	}
}
