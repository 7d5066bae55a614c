package fhirsample

import (
	"encoding/json"
	"fmt"
	"html"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Systems used by the synthetic data, exported so that demo configs and
// tests can name them (e.g. a mask on the SSN identifier).
const (
	// DemoTagSystem is the system of the meta.tag "synthetic" that every
	// generated resource carries.
	DemoTagSystem = "https://fhirwall.dev/fhir/CodeSystem/demo"
	// SSNSystem is the identifier system of Patient SSNs (all 999-xx-xxxx).
	SSNSystem = "http://hl7.org/fhir/sid/us-ssn"
	// MRNSystem is the identifier system of Patient medical record numbers.
	MRNSystem = "https://fhirwall.dev/fhir/sid/demo-mrn"
	// NPISystem is the identifier system of Practitioner and Organization NPIs.
	NPISystem = "http://hl7.org/fhir/sid/us-npi"
	// LOINCSystem codes Observation.code.
	LOINCSystem = "http://loinc.org"
	// ICD10System codes Condition.code and Claim.diagnosis.
	ICD10System = "http://hl7.org/fhir/sid/icd-10-cm"
	// ObservationCategorySystem codes Observation.category (vital-signs,
	// laboratory).
	ObservationCategorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
	// ConditionCategorySystem codes Condition.category (encounter-diagnosis,
	// problem-list-item).
	ConditionCategorySystem = "http://terminology.hl7.org/CodeSystem/condition-category"

	v2IdentifierSys = "http://terminology.hl7.org/CodeSystem/v2-0203"
)

// generatedAt is the lastUpdated of the first generated resource; the
// others follow a minute apart, so the data does not depend on the clock.
var generatedAt = time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)

// gen fills a db with the synthetic data set.
type gen struct {
	d *db
	r *rand.Rand
	n int // resources stored so far
}

// generate stores the data set New documents.
func generate(d *db, patients int, seed int64) {
	g := &gen{d: d, r: rand.New(rand.NewPCG(uint64(seed), 0x66686972))}
	g.organizations()
	pracs := g.practitioners(5)
	for n := 1; n <= patients; n++ {
		g.patient(n, pracs)
	}
}

// store adds the demo tag and stores res; generated data never fails to
// encode, so an error here is a bug in this file.
func (g *gen) store(typ, id string, res map[string]any) {
	res["meta"] = map[string]any{"tag": []any{map[string]any{
		"system": DemoTagSystem, "code": "synthetic", "display": "Synthetic demo data, not a real person",
	}}}
	if _, err := g.d.put(typ, id, res, "POST", generatedAt.Add(time.Duration(g.n)*time.Minute)); err != nil {
		panic(fmt.Sprintf("fhirsample: generated %s/%s does not encode: %v", typ, id, err))
	}
	g.n++
}

func narrative(format string, args ...any) map[string]any {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = html.EscapeString(s)
		}
	}
	return map[string]any{
		"status": "generated",
		"div":    `<div xmlns="http://www.w3.org/1999/xhtml"><p>` + fmt.Sprintf(format, args...) + `</p></div>`,
	}
}

func coding(system, code, display string) map[string]any {
	return map[string]any{"system": system, "code": code, "display": display}
}

func concept(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{coding(system, code, display)}, "text": display}
}

func ref(target, display string) map[string]any {
	return map[string]any{"reference": target, "display": display}
}

func money(v float64) map[string]any {
	return map[string]any{"value": json.Number(strconv.FormatFloat(v, 'f', 2, 64)), "currency": "USD"}
}

type party struct{ ref, name string }

var (
	clinic = party{"Organization/org-clinic", "Riverbend Demo Clinic"}
	payers = []party{
		{"Organization/org-payer-1", "Acme Demo Health Plan"},
		{"Organization/org-payer-2", "Placeholder Mutual Insurance"},
	}
)

func (g *gen) organizations() {
	orgs := []struct {
		p        party
		typ, npi string
	}{{clinic, "prov", "9990000100"}, {payers[0], "pay", "9990000200"}, {payers[1], "pay", "9990000300"}}
	for _, o := range orgs {
		id := strings.TrimPrefix(o.p.ref, "Organization/")
		g.store("Organization", id, map[string]any{
			"text":       narrative("%s (synthetic organization)", o.p.name),
			"active":     true,
			"name":       o.p.name,
			"identifier": []any{map[string]any{"system": NPISystem, "value": o.npi}},
			"type": []any{concept("http://terminology.hl7.org/CodeSystem/organization-type", o.typ,
				map[string]string{"prov": "Healthcare Provider", "pay": "Payer"}[o.typ])},
			"telecom": []any{map[string]any{"system": "phone", "value": "(217) 555-0100", "use": "work"}},
		})
	}
}

func (g *gen) practitioners(count int) []party {
	var out []party
	for i := 1; i <= count; i++ {
		given, family := g.pick(givenFemale), g.pick(families)
		if i%2 == 0 {
			given = g.pick(givenMale)
		}
		id := "prac-" + strconv.Itoa(i)
		name := "Dr. " + given + " " + family
		g.store("Practitioner", id, map[string]any{
			"text":       narrative("%s, synthetic practitioner", name),
			"active":     true,
			"identifier": []any{map[string]any{"system": NPISystem, "value": fmt.Sprintf("99900010%02d", i)}},
			"name":       []any{map[string]any{"use": "official", "family": family, "given": []any{given}, "prefix": []any{"Dr."}, "text": name}},
			"telecom":    []any{map[string]any{"system": "phone", "value": fmt.Sprintf("(217) 555-01%02d", 10+i), "use": "work"}},
		})
		out = append(out, party{"Practitioner/" + id, name})
	}
	return out
}

func (g *gen) pick(list []string) string { return list[g.r.IntN(len(list))] }

// day returns a date in 2024 as time.
func (g *gen) day() time.Time {
	return time.Date(2024, 1, 1, 8+g.r.IntN(9), 15*g.r.IntN(4), 0, 0, time.UTC).AddDate(0, 0, g.r.IntN(360))
}

// patient stores patient n and everything in its compartment.
func (g *gen) patient(n int, pracs []party) {
	nnn := fmt.Sprintf("%03d", n)
	pid := "pat-" + nnn
	gender, given := "female", g.pick(givenFemale)
	if g.r.IntN(2) == 0 {
		gender, given = "male", g.pick(givenMale)
	}
	family := g.pick(families)
	name := given + " " + family
	birth := time.Date(1940+g.r.IntN(70), time.Month(1+g.r.IntN(12)), 1+g.r.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	place := places[g.r.IntN(len(places))]
	mrn := fmt.Sprintf("MRN-%06d", 100000+g.r.IntN(900000))
	gp := pracs[(n-1)%len(pracs)]
	g.store("Patient", pid, map[string]any{
		"text": narrative("%s, %s, born %s, MRN %s", name, gender, birth, mrn),
		"identifier": []any{
			map[string]any{"use": "usual", "type": concept(v2IdentifierSys, "MR", "Medical record number"), "system": MRNSystem, "value": mrn},
			map[string]any{"use": "official", "type": concept(v2IdentifierSys, "SS", "Social Security number"), "system": SSNSystem,
				"value": fmt.Sprintf("999-%02d-%04d", 1+g.r.IntN(99), 1+g.r.IntN(9999))},
		},
		"active": true,
		"name":   []any{map[string]any{"use": "official", "family": family, "given": []any{given}, "text": name}},
		"telecom": []any{
			map[string]any{"system": "phone", "value": fmt.Sprintf("(%s) 555-01%02d", place.area, g.r.IntN(100)), "use": "home"},
			map[string]any{"system": "email", "value": strings.ToLower(given+"."+family) + "@example.org", "use": "home"},
		},
		"gender":    gender,
		"birthDate": birth,
		"address": []any{map[string]any{
			"use": "home", "line": []any{fmt.Sprintf("%d %s", 10+g.r.IntN(990), g.pick(streets))},
			"city": place.city, "state": place.state, "postalCode": fmt.Sprintf("%s%02d", place.zip, g.r.IntN(100)), "country": "US",
		}},
		"generalPractitioner":  []any{ref(gp.ref, gp.name)},
		"managingOrganization": ref(clinic.ref, clinic.name),
	})
	subject := ref("Patient/"+pid, name)

	payer := payers[(n+1)%2]
	g.store("Coverage", "cov-"+nnn, map[string]any{
		"text":         narrative("Health plan coverage of %s with %s", name, payer.name),
		"status":       "active",
		"type":         concept("http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIP", "health insurance plan policy"),
		"subscriberId": fmt.Sprintf("SUB-%07d", g.r.IntN(10000000)),
		"beneficiary":  subject,
		"relationship": concept("http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", "Self"),
		"period":       map[string]any{"start": "2024-01-01"},
		"payor":        []any{ref(payer.ref, payer.name)},
	})

	var encStart [2]time.Time
	encTypes := []coded{{"185349003", "Encounter for check up"}, {"270427003", "Patient-initiated encounter"}}
	for k := range 2 {
		encStart[k] = g.day()
		doc := pracs[g.r.IntN(len(pracs))]
		g.store("Encounter", fmt.Sprintf("enc-%s-%d", nnn, k+1), map[string]any{
			"text":            narrative("%s for %s on %s", encTypes[k].display, name, encStart[k].Format("2006-01-02")),
			"status":          "finished",
			"class":           coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
			"type":            []any{concept("http://snomed.info/sct", encTypes[k].code, encTypes[k].display)},
			"subject":         subject,
			"participant":     []any{map[string]any{"individual": ref(doc.ref, doc.name)}},
			"period":          map[string]any{"start": encStart[k].Format(time.RFC3339), "end": encStart[k].Add(30 * time.Minute).Format(time.RFC3339)},
			"serviceProvider": ref(clinic.ref, clinic.name),
		})
	}

	first := g.r.IntN(len(diagnoses))
	dx := [2]coded{diagnoses[first], diagnoses[(first+1+g.r.IntN(len(diagnoses)-1))%len(diagnoses)]}
	conds := []struct{ category, categoryDisplay, clinical string }{
		{"encounter-diagnosis", "Encounter Diagnosis", "resolved"},
		{"problem-list-item", "Problem List Item", "active"},
	}
	for k, c := range conds {
		onset := encStart[0]
		if k == 1 {
			onset = onset.AddDate(-1-g.r.IntN(5), 0, 0)
		}
		cond := map[string]any{
			"text":               narrative("%s: %s (%s)", name, dx[k].display, c.clinical),
			"clinicalStatus":     concept("http://terminology.hl7.org/CodeSystem/condition-clinical", c.clinical, strings.ToUpper(c.clinical[:1])+c.clinical[1:]),
			"verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
			"category":           []any{concept(ConditionCategorySystem, c.category, c.categoryDisplay)},
			"code":               concept(ICD10System, dx[k].code, dx[k].display),
			"subject":            subject,
			"onsetDateTime":      onset.Format("2006-01-02"),
			"recordedDate":       encStart[0].Format("2006-01-02"),
		}
		if k == 0 {
			cond["encounter"] = map[string]any{"reference": fmt.Sprintf("Encounter/enc-%s-1", nnn)}
		}
		g.store("Condition", fmt.Sprintf("cond-%s-%d", nnn, k+1), cond)
	}

	for k, m := range append(append([]measure{}, vitalSigns...), labs...) {
		vital := k < len(vitalSigns)
		enc := k % 2
		category, categoryDisplay := "laboratory", "Laboratory"
		performer := clinic
		if vital {
			category, categoryDisplay = "vital-signs", "Vital Signs"
			performer = pracs[g.r.IntN(len(pracs))]
		}
		status := "final"
		if k == 6 {
			status = "preliminary"
		}
		value := m.low + g.r.Float64()*(m.high-m.low)
		valueText := strconv.FormatFloat(value, 'f', m.decimals, 64)
		effective := encStart[enc].Add(time.Duration(5+k) * time.Minute)
		obs := map[string]any{
			"text":              narrative("%s of %s: %s %s", m.display, name, valueText, m.unit),
			"status":            status,
			"category":          []any{concept(ObservationCategorySystem, category, categoryDisplay)},
			"code":              concept(LOINCSystem, m.loinc, m.display),
			"subject":           subject,
			"encounter":         map[string]any{"reference": fmt.Sprintf("Encounter/enc-%s-%d", nnn, enc+1)},
			"effectiveDateTime": effective.Format(time.RFC3339),
			"issued":            effective.Add(2 * time.Hour).Format(time.RFC3339),
			"performer":         []any{ref(performer.ref, performer.name)},
			"valueQuantity": map[string]any{
				"value": json.Number(valueText), "unit": m.unit, "system": "http://unitsofmeasure.org", "code": m.ucum,
			},
		}
		if m.refHigh > 0 {
			obs["referenceRange"] = []any{map[string]any{
				"low":  map[string]any{"value": json.Number(strconv.FormatFloat(m.refLow, 'f', -1, 64)), "unit": m.unit, "system": "http://unitsofmeasure.org", "code": m.ucum},
				"high": map[string]any{"value": json.Number(strconv.FormatFloat(m.refHigh, 'f', -1, 64)), "unit": m.unit, "system": "http://unitsofmeasure.org", "code": m.ucum},
			}}
		}
		g.store("Observation", fmt.Sprintf("obs-%s-%d", nnn, k+1), obs)
	}

	if n%2 == 1 {
		for k := range 2 {
			g.claim(nnn, k, subject, name, payer, encStart[k], dx[:k+1], pracs[(n+k)%len(pracs)])
		}
	}
}

// claim stores claim-NNN-(k+1) for encounter k of the patient.
func (g *gen) claim(nnn string, k int, subject map[string]any, name string, payer party, when time.Time, dx []coded, doc party) {
	var diagnosis []any
	for i, d := range dx {
		diagnosis = append(diagnosis, map[string]any{
			"sequence":                 i + 1,
			"diagnosisCodeableConcept": concept(ICD10System, d.code, d.display),
		})
	}
	price := float64(80+g.r.IntN(220)) + float64(g.r.IntN(100))/100
	date := when.Format("2006-01-02")
	g.store("Claim", fmt.Sprintf("claim-%s-%d", nnn, k+1), map[string]any{
		"text":           narrative("Professional claim for %s, %s, USD %.2f", name, date, price),
		"identifier":     []any{map[string]any{"system": "https://fhirwall.dev/fhir/sid/demo-claim", "value": fmt.Sprintf("CLM-%s-%d", nnn, k+1)}},
		"status":         "active",
		"type":           concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional", "Professional"),
		"use":            "claim",
		"patient":        subject,
		"billablePeriod": map[string]any{"start": date, "end": date},
		"created":        when.Add(24 * time.Hour).Format("2006-01-02"),
		"insurer":        ref(payer.ref, payer.name),
		"provider":       ref(clinic.ref, clinic.name),
		"priority":       concept("http://terminology.hl7.org/CodeSystem/processpriority", "normal", "Normal"),
		"careTeam":       []any{map[string]any{"sequence": 1, "provider": ref(doc.ref, doc.name)}},
		"diagnosis":      diagnosis,
		"insurance": []any{map[string]any{
			"sequence": 1, "focal": true, "coverage": map[string]any{"reference": "Coverage/cov-" + nnn},
		}},
		"item": []any{map[string]any{
			"sequence":         1,
			"productOrService": concept("http://www.ama-assn.org/go/cpt", "99213", "Office or other outpatient visit, established patient"),
			"servicedDate":     date,
			"encounter":        []any{map[string]any{"reference": fmt.Sprintf("Encounter/enc-%s-%d", nnn, k+1)}},
			"net":              money(price),
		}},
		"total": money(price),
	})
}
