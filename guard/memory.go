package guard

import (
	"sync"
	"time"
)

// memState is the in-memory backend of the limits: the whole state of a
// single instance, and the per-replica fallback of the rate limit when
// FailOpenLimits is set. One mutex is enough: every critical section is a
// few map operations.
type memState struct {
	mu       sync.Mutex
	tat      map[string]time.Time            // GCRA theoretical arrival time per agent
	patients map[string]map[string]time.Time // agent -> patient -> last disclosure
	bulk     map[string][]time.Time          // agent -> times of bulk calls, oldest first
}

func newMemState() *memState {
	return &memState{
		tat:      map[string]time.Time{},
		patients: map[string]map[string]time.Time{},
		bulk:     map[string][]time.Time{},
	}
}

// gcra is the same algorithm as gcraScript: allow when the new theoretical
// arrival time is at most burst intervals ahead of now.
func (m *memState) gcra(agent string, now time.Time, interval time.Duration, burst int) (retryAfter time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tat := m.tat[agent]
	if tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(interval)
	allowAt := newTAT.Add(-time.Duration(burst) * interval)
	if now.Before(allowAt) {
		return max(allowAt.Sub(now), time.Microsecond)
	}
	m.tat[agent] = newTAT
	return 0
}

// admitPatients is patientsScript in memory. The map is only trimmed when
// the count matters, so the common already-seen case stays O(len(ids)).
func (m *memState) admitPatients(agent string, ids []string, now time.Time, limit int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.patients[agent]
	if seen == nil {
		seen = map[string]time.Time{}
		m.patients[agent] = seen
	}
	oldest := now.Add(-patientWindow)
	fresh := 0
	for _, id := range ids {
		if t, ok := seen[id]; !ok || t.Before(oldest) {
			fresh++
		}
	}
	if fresh > 0 && len(seen)+fresh > limit {
		trim(seen, oldest)
		if len(seen)+fresh > limit {
			return false
		}
	}
	for _, id := range ids {
		seen[id] = now
	}
	return true
}

func (m *memState) patientCount(agent string, now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.patients[agent]
	trim(seen, now.Add(-patientWindow))
	return len(seen)
}

func trim(seen map[string]time.Time, oldest time.Time) {
	for id, t := range seen {
		if t.Before(oldest) {
			delete(seen, id)
		}
	}
}

// bulkCall is bulkScript in memory: a sliding log of call times.
func (m *memState) bulkCall(agent string, now time.Time, limit int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldest := now.Add(-bulkWindow)
	calls := m.bulk[agent]
	i := 0
	for i < len(calls) && calls[i].Before(oldest) {
		i++
	}
	calls = calls[i:]
	if len(calls) >= limit {
		m.bulk[agent] = calls
		return false
	}
	m.bulk[agent] = append(calls, now)
	return true
}
