package fhirsample

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestSearch(t *testing.T) {
	f := newFixture(t, Options{Seed: 3})
	pat := f.get("Patient/pat-001", http.StatusOK)
	family, birth := str(pat, "name.0.family"), str(pat, "birthDate")

	tests := []struct {
		query   string
		headers []string
		total   int
	}{
		{"Patient", nil, 20},
		{"Patient?_id=pat-003", nil, 1},
		{"Patient?_id=pat-003,pat-004,nope", nil, 2},
		{"Patient?identifier=" + SSNSystem + "|" + str(pat, "identifier.1.value"), nil, 1},
		{"Patient?birthdate=ge1900-01-01", nil, 20},
		{"Patient?birthdate=lt1900", nil, 0},
		{"Patient?birthdate=" + birth[:4] + "&_id=pat-001", nil, 1},
		{"Patient?birthdate=ne" + birth + "&_id=pat-001", nil, 0},
		{"Patient?birthdate=gt" + birth + "&_id=pat-001", nil, 0},
		{"Patient?birthdate=le" + birth + "&_id=pat-001", nil, 1},
		{"Patient?name=" + strings.ToLower(family[:3]) + "&_id=pat-001", nil, 1},
		{"Patient?name:exact=" + strings.ToLower(family) + "&_id=pat-001", nil, 0},
		{"Patient?name:contains=" + family[2:] + "&_id=pat-001", nil, 1},
		{"Patient?name=zzz", nil, 0},
		{"Patient?general-practitioner=Practitioner/prac-1", nil, 4},
		{"Observation", nil, 140},
		{"Observation?patient=Patient/pat-001", nil, 7},
		{"Observation?patient=pat-001", nil, 7},
		{"Observation?subject=pat-001", nil, 7},
		{"Observation?subject:Patient=pat-001", nil, 7},
		{"Observation?subject:Group=pat-001", nil, 0},
		{"Observation?subject=" + url.QueryEscape(f.base+"/Patient/pat-001"), nil, 7},
		{"Observation?patient=Group/pat-001", nil, 0},
		{"Observation?category=vital-signs", nil, 80},
		{"Observation?category=" + ObservationCategorySystem + "|laboratory", nil, 60},
		{"Observation?category=http://wrong|laboratory", nil, 0},
		{"Observation?category=" + ObservationCategorySystem + "|", nil, 140},
		{"Observation?code=" + LOINCSystem + "|8867-4", nil, 20},
		{"Observation?code=8867-4,718-7", nil, 40},
		{"Observation?status=preliminary", nil, 20},
		{"Observation?status=final,preliminary", nil, 140},
		{"Observation?patient=pat-001&category=laboratory", nil, 3},
		{"Observation?patient=pat-001&category=laboratory&status=final", nil, 2},
		{"Observation?date=ge2024-01-01&date=lt2025", nil, 140},
		{"Observation?encounter=Encounter/enc-001-1", nil, 4},
		{"Observation?performer=Organization/org-clinic", nil, 60},
		{"Condition?category=problem-list-item", nil, 20},
		{"Condition?patient=pat-002&clinical-status=active", nil, 1},
		{"Condition?code=" + ICD10System + "|", nil, 40},
		{"Encounter?patient=pat-002&status=finished", nil, 2},
		{"Encounter?date=2024", nil, 40},
		{"Claim", nil, 20},
		{"Claim?patient=pat-001", nil, 2},
		{"Claim?patient=pat-002", nil, 0},
		{"Claim?insurer=Organization/org-payer-1", nil, 20},
		{"Coverage?payor=Organization/org-payer-1", nil, 10},
		{"Coverage?beneficiary=pat-004", nil, 1},
		{"Practitioner?name=dr", nil, 5},
		{"Organization?type=pay", nil, 2},
		{"Observation?_tag=" + DemoTagSystem + "|synthetic", nil, 140},
		{"Observation?_lastUpdated=ge2025-01-06", nil, 140},
		// Unknown parameters are ignored by default, refused when strict.
		{"Observation?patient=pat-001&unknown=1&patient.name=x&_sort=date", nil, 7},
		{"Observation?patient=pat-001&_summary=true", nil, 7},
		// Compartment search.
		{"Patient/pat-001/Observation", nil, 7},
		{"Patient/pat-001/Observation?category=laboratory", nil, 3},
		{"Patient/pat-001/Claim", nil, 2},
		{"Patient/pat-001/Coverage", nil, 1},
		{"Patient/nope/Condition", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			f := f.with(t)
			b := f.get(tt.query+sep(tt.query)+"_count=500", http.StatusOK, tt.headers...)
			if str(b, "type") != "searchset" || total(b) != tt.total || len(entries(b)) != tt.total {
				t.Fatalf("type %s, total %d, %d entries; want %d", str(b, "type"), total(b), len(entries(b)), tt.total)
			}
			for _, e := range entries(b) {
				if str(e, "search.mode") != "match" {
					t.Errorf("entry mode %q", str(e, "search.mode"))
				}
			}
			self := str(b, "link.0.url")
			if str(b, "link.0.relation") != "self" || !strings.HasPrefix(self, f.base+"/") {
				t.Errorf("self link %q", self)
			}
			for _, ignored := range []string{"unknown", "patient.name", "_sort", "_summary"} {
				if strings.Contains(self, ignored) {
					t.Errorf("self link %q repeats the ignored parameter %s", self, ignored)
				}
			}
		})
	}
}

func sep(q string) string {
	if strings.Contains(q, "?") {
		return "&"
	}
	return "?"
}

func TestSearchErrors(t *testing.T) {
	f := newFixture(t, Options{Seed: 3})
	strict := []string{"Prefer", "handling=strict"}
	tests := []struct {
		query   string
		headers []string
		status  int
	}{
		{"Observation?unknown=1", strict, 400},
		{"Observation?patient.name=x", strict, 400},
		{"Observation?_count=abc", nil, 400},
		{"Observation?_count=-1", nil, 400},
		{"Observation?_getpagesoffset=x", nil, 400},
		{"Observation?date=yesterday", nil, 400},
		{"Observation?date=xx2024", nil, 400},
		{"Patient?name:sounds=x", nil, 400},
		{"Observation?code:text=x", nil, 400},
		{"Observation?_summary=bogus", nil, 400},
		{"Observation?_include=Observation:nope", nil, 400},
		{"Observation?_include=Claim:patient", nil, 400},
		{"Observation?_include=Observation", nil, 400},
		{"Observation?_include:recurse=Observation:subject", nil, 400},
		{"Observation?_revinclude=Observation:code", nil, 400},
		{"Patient/pat-001/Practitioner", nil, 400},
		{"Patient/_history", nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			f := f.with(t)
			r := f.do(http.MethodGet, tt.query, "", tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			isOutcome(t, r)
		})
	}
}

func TestSummaryCount(t *testing.T) {
	f := newFixture(t, Options{Seed: 3})
	for _, q := range []string{"Observation?_summary=count", "Observation?_count=0"} {
		b := f.get(q, http.StatusOK)
		if total(b) != 140 || len(entries(b)) != 0 {
			t.Errorf("%s: total %d, %d entries", q, total(b), len(entries(b)))
		}
	}
}

func TestOffsetBeyondEnd(t *testing.T) {
	f := newFixture(t, Options{Seed: 3})
	for _, off := range []string{"140", "1000", "9223372036854775807"} {
		b := f.get("Observation?_getpagesoffset="+off, http.StatusOK)
		if total(b) != 140 || len(entries(b)) != 0 || linkURL(b, "next") != "" || linkURL(b, "previous") == "" {
			t.Errorf("offset %s: total %d, %d entries, next %q, previous %q", off, total(b), len(entries(b)), linkURL(b, "next"), linkURL(b, "previous"))
		}
	}
}

func TestPostSearch(t *testing.T) {
	f := newFixture(t, Options{Seed: 3})
	r := f.do(http.MethodPost, "Observation/_search?category=laboratory", "patient=pat-002&_count=2",
		"Content-Type", "application/x-www-form-urlencoded")
	if r.status != 200 || total(r.body) != 3 || len(entries(r.body)) != 2 {
		t.Fatalf("status %d, total %d, %d entries: %s", r.status, total(r.body), len(entries(r.body)), r.raw)
	}
	next := linkURL(r.body, "next")
	if !strings.Contains(next, "patient=pat-002") || !strings.Contains(next, "category=laboratory") {
		t.Errorf("next link %q lost the form parameters", next)
	}
}

func linkURL(b map[string]any, rel string) string {
	links, _ := b["link"].([]any)
	for _, l := range links {
		if str(l, "relation") == rel {
			return str(l, "url")
		}
	}
	return ""
}

// TestPaging follows next links to the end and back, checking that every
// match is seen exactly once and that every link is absolute.
func TestPaging(t *testing.T) {
	f := newFixture(t, Options{Seed: 3})
	tests := []struct {
		start string
		count int
		total int
		pages int
	}{
		{"Observation", 10, 140, 14},
		{"Observation?_count=7", 7, 140, 20},
		{"Observation?_count=30&category=laboratory", 30, 60, 2},
		{"Patient?_count=6", 6, 20, 4},
		{"Patient/pat-003/Observation?_count=3", 3, 7, 3},
		{"Claim?_count=500", 500, 20, 1},
		{"Claim?patient=pat-002", 10, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.start, func(t *testing.T) {
			f := f.with(t)
			seen := map[string]bool{}
			var order []string
			pages := 0
			u := f.base + "/" + tt.start
			var last map[string]any
			for u != "" {
				b := f.get(u, http.StatusOK)
				pages++
				if pages > 100 {
					t.Fatal("next links never end")
				}
				if total(b) != tt.total {
					t.Fatalf("page %d: total %d, want %d", pages, total(b), tt.total)
				}
				if n := len(entries(b)); n > tt.count {
					t.Fatalf("page %d has %d entries, _count is %d", pages, n, tt.count)
				}
				for _, l := range b["link"].([]any) {
					if !strings.HasPrefix(str(l, "url"), f.base+"/") {
						t.Fatalf("link %s is not absolute on the base: %s", str(l, "relation"), str(l, "url"))
					}
				}
				for _, e := range entries(b) {
					key := str(e, "fullUrl")
					if seen[key] {
						t.Fatalf("%s seen twice", key)
					}
					seen[key] = true
					order = append(order, key)
				}
				last = b
				u = linkURL(b, "next")
			}
			if len(seen) != tt.total || pages != tt.pages {
				t.Fatalf("saw %d resources in %d pages, want %d in %d", len(seen), pages, tt.total, tt.pages)
			}
			if linkURL(last, "last") != "" && linkURL(last, "last") != linkURL(last, "self") {
				t.Errorf("the last page is not the last link: %s vs %s", linkURL(last, "self"), linkURL(last, "last"))
			}
			// Walk back with previous links.
			var back []string
			for u := linkURL(last, "self"); u != ""; {
				b := f.get(u, http.StatusOK)
				var page []string
				for _, e := range entries(b) {
					page = append(page, str(e, "fullUrl"))
				}
				back = append(page, back...)
				u = linkURL(b, "previous")
			}
			if !slices.Equal(back, order) {
				t.Errorf("walking previous links gave a different order")
			}
		})
	}
}

func TestIncludes(t *testing.T) {
	f := newFixture(t, Options{Seed: 3})
	tests := []struct {
		query    string
		matches  int
		included []string // the included resources, in order
	}{
		{"Observation?patient=pat-001&_include=Observation:subject", 7, []string{"Patient/pat-001"}},
		{"Observation?patient=pat-001&_include=Observation:subject:Practitioner", 7, nil},
		{"Observation?_id=obs-001-5&_include=Observation:performer", 1, []string{"Organization/org-clinic"}},
		{"Observation?_id=obs-001-5&_include=Observation:performer&_include=Observation:subject&_include=Observation:encounter", 1,
			[]string{"Organization/org-clinic", "Patient/pat-001", "Encounter/enc-001-1"}},
		{"Claim?patient=pat-001&_include=Claim:patient&_include=Claim:insurer", 2, []string{"Patient/pat-001", "Organization/org-payer-1"}},
		{"Claim?patient=pat-001&_include=Claim:patient&_include:iterate=Patient:organization", 2, []string{"Patient/pat-001", "Organization/org-clinic"}},
		{"Patient?_id=pat-002&_revinclude=Observation:subject", 1,
			[]string{"Observation/obs-002-1", "Observation/obs-002-2", "Observation/obs-002-3", "Observation/obs-002-4",
				"Observation/obs-002-5", "Observation/obs-002-6", "Observation/obs-002-7"}},
		{"Patient?_id=pat-002&_revinclude=Claim:patient&_revinclude=Coverage:beneficiary", 1, []string{"Coverage/cov-002"}},
		{"Patient?_id=pat-003&_revinclude=Claim:patient", 1, []string{"Claim/claim-003-1", "Claim/claim-003-2"}},
		{"Encounter?_id=enc-001-1&_revinclude=Condition:encounter&_revinclude:iterate=Claim:patient", 1, []string{"Condition/cond-001-1"}},
		{"Patient?_count=2&_revinclude=Coverage:patient", 2, []string{"Coverage/cov-001", "Coverage/cov-002"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			f := f.with(t)
			b := f.get(tt.query, http.StatusOK)
			var matches int
			var included []string
			for _, e := range entries(b) {
				switch str(e, "search.mode") {
				case "match":
					matches++
				case "include":
					included = append(included, strings.TrimPrefix(str(e, "fullUrl"), f.base+"/"))
				default:
					t.Errorf("entry mode %q", str(e, "search.mode"))
				}
			}
			if matches != tt.matches || !slices.Equal(included, tt.included) {
				t.Errorf("%d matches, included %v; want %d, %v", matches, included, tt.matches, tt.included)
			}
			if total(b) < matches {
				t.Errorf("total %d counts fewer than the matches", total(b))
			}
		})
	}
}

func TestEverything(t *testing.T) {
	f := newFixture(t, Options{Seed: 3})
	b := f.get("Patient/pat-001/$everything", http.StatusOK)
	counts := map[string]int{}
	for _, e := range entries(b) {
		counts[str(e, "resource.resourceType")]++
		if !strings.HasPrefix(str(e, "fullUrl"), f.base+"/") {
			t.Errorf("fullUrl %q", str(e, "fullUrl"))
		}
		if ref := str(e, "resource.subject.reference") + str(e, "resource.patient.reference") + str(e, "resource.beneficiary.reference"); ref != "" && ref != "Patient/pat-001" {
			t.Errorf("%s belongs to %s", str(e, "fullUrl"), ref)
		}
	}
	want := map[string]int{"Patient": 1, "Observation": 7, "Encounter": 2, "Condition": 2, "Coverage": 1, "Claim": 2}
	for typ, n := range want {
		if counts[typ] != n {
			t.Errorf("%d %s, want %d", counts[typ], typ, n)
		}
	}
	if counts["Practitioner"] == 0 || counts["Organization"] < 2 || counts["Patient"] != 1 {
		t.Errorf("referenced resources missing or other patients present: %v", counts)
	}
	if total(b) != len(entries(b)) {
		t.Errorf("total %d, %d entries", total(b), len(entries(b)))
	}
	if r := f.do(http.MethodGet, "Patient/nope/$everything", ""); r.status != 404 {
		t.Errorf("unknown patient: status %d", r.status)
	}
}
