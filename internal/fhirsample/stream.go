package fhirsample

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// StreamBaseURL is the FHIR base of the fullUrls WriteSearchset writes.
const StreamBaseURL = "http://fhirsample.invalid/fhir"

// demoTagJSON is the meta.tag every synthetic resource carries.
const demoTagJSON = `"tag":[{"system":"` + DemoTagSystem + `","code":"synthetic","display":"Synthetic demo data, not a real person"}]`

// WriteSearchset writes a valid searchset Bundle of the given number of
// entries to w without holding it in memory, for benchmarks of bodies of
// any size: entries average about 1 KB, so 1 GB is about 1,000,000
// entries, written in chunks of about 32 KB. Even entries are Patients
// (search.mode match), odd ones an Observation of the Patient before it
// (search.mode include), as GET Patient?_revinclude=Observation:subject
// returns them; Bundle.total counts the Patients. Patients carry telecom,
// an SSN identifier, birthDate and an address, so masking has work to do.
// fullUrls are based on StreamBaseURL. The output is deterministic for a
// seed. It returns the first write error.
func WriteSearchset(w io.Writer, entries int, seed int64) error {
	if entries < 0 {
		return fmt.Errorf("fhirsample: negative entry count %d", entries)
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x73747265616d))
	buf := make([]byte, 0, 40<<10)
	buf = append(buf, `{"resourceType":"Bundle","id":"bench-searchset","type":"searchset","total":`...)
	buf = strconv.AppendInt(buf, int64((entries+1)/2), 10)
	buf = append(buf, `,"link":[{"relation":"self","url":"`+StreamBaseURL+`/Patient?_revinclude=Observation:subject"}],"entry":[`...)
	var name string
	for i := range entries {
		if i > 0 {
			buf = append(buf, ',')
		}
		if i%2 == 0 {
			buf, name = appendPatient(buf, i/2, r)
		} else {
			buf = appendObservation(buf, i/2, name, r)
		}
		if len(buf) >= 32<<10 {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("fhirsample: write searchset: %w", err)
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, "]}"...)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("fhirsample: write searchset: %w", err)
	}
	return nil
}

func appendPatient(b []byte, n int, r *rand.Rand) ([]byte, string) {
	id := "bp-" + strconv.Itoa(n)
	gender, given := "female", givenFemale[r.IntN(len(givenFemale))]
	if r.IntN(2) == 0 {
		gender, given = "male", givenMale[r.IntN(len(givenMale))]
	}
	family := families[r.IntN(len(families))]
	place := places[r.IntN(len(places))]
	name := given + " " + family
	birth := time.Date(1940+r.IntN(70), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)

	b = append(b, `{"fullUrl":"`+StreamBaseURL+`/Patient/`...)
	b = append(b, id...)
	b = append(b, `","resource":{"resourceType":"Patient","id":"`...)
	b = append(b, id...)
	b = append(b, `","meta":{"versionId":"1","lastUpdated":"2025-01-06T09:00:00Z",`+demoTagJSON+`},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>`...)
	b = append(b, name...)
	b = append(b, `</p></div>"},"active":true,"address":[{"use":"home","line":["`...)
	b = strconv.AppendInt(b, int64(10+r.IntN(990)), 10)
	b = append(b, ' ')
	b = append(b, streets[r.IntN(len(streets))]...)
	b = append(b, `"],"city":"`...)
	b = append(b, place.city...)
	b = append(b, `","state":"`...)
	b = append(b, place.state...)
	b = append(b, `","postalCode":"`...)
	b = append(b, place.zip...)
	b = appendDigits(b, r.IntN(100), 2)
	b = append(b, `","country":"US"}],"birthDate":"`...)
	b = birth.AppendFormat(b, "2006-01-02")
	b = append(b, `","gender":"`...)
	b = append(b, gender...)
	b = append(b, `","identifier":[{"use":"usual","system":"`+MRNSystem+`","value":"MRN-`...)
	b = appendDigits(b, 100000+r.IntN(900000), 6)
	b = append(b, `"},{"use":"official","type":{"coding":[{"system":"`+v2IdentifierSys+`","code":"SS"}]},"system":"`+SSNSystem+`","value":"999-`...)
	b = appendDigits(b, 1+r.IntN(99), 2)
	b = append(b, '-')
	b = appendDigits(b, 1+r.IntN(9999), 4)
	b = append(b, `"}],"name":[{"use":"official","family":"`...)
	b = append(b, family...)
	b = append(b, `","given":["`...)
	b = append(b, given...)
	b = append(b, `"],"text":"`...)
	b = append(b, name...)
	b = append(b, `"}],"telecom":[{"system":"phone","value":"(`...)
	b = append(b, place.area...)
	b = append(b, `) 555-01`...)
	b = appendDigits(b, r.IntN(100), 2)
	b = append(b, `","use":"home"}]},"search":{"mode":"match"}}`...)
	return b, name
}

func appendObservation(b []byte, n int, name string, r *rand.Rand) []byte {
	id := "bo-" + strconv.Itoa(n)
	m := vitalSigns[r.IntN(len(vitalSigns))]
	value := strconv.AppendFloat(nil, m.low+r.Float64()*(m.high-m.low), 'f', m.decimals, 64)
	b = append(b, `{"fullUrl":"`+StreamBaseURL+`/Observation/`...)
	b = append(b, id...)
	b = append(b, `","resource":{"resourceType":"Observation","id":"`...)
	b = append(b, id...)
	b = append(b, `","meta":{"versionId":"1","lastUpdated":"2025-01-06T09:00:00Z",`+demoTagJSON+`},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>`...)
	b = append(b, m.display...)
	b = append(b, ` of `...)
	b = append(b, name...)
	b = append(b, `: `...)
	b = append(b, value...)
	b = append(b, `</p></div>"},"status":"final","category":[{"coding":[{"system":"`+ObservationCategorySystem+`","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"`+LOINCSystem+`","code":"`...)
	b = append(b, m.loinc...)
	b = append(b, `","display":"`...)
	b = append(b, m.display...)
	b = append(b, `"}]},"subject":{"reference":"Patient/bp-`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `","display":"`...)
	b = append(b, name...)
	b = append(b, `"},"effectiveDateTime":"2024-0`...)
	b = appendDigits(b, 1+r.IntN(9), 1)
	b = append(b, `-1`...)
	b = appendDigits(b, r.IntN(9), 1)
	b = append(b, `T10:00:00Z","valueQuantity":{"value":`...)
	b = append(b, value...)
	b = append(b, `,"unit":"`...)
	b = append(b, m.unit...)
	b = append(b, `","system":"http://unitsofmeasure.org","code":"`...)
	b = append(b, m.ucum...)
	b = append(b, `"}},"search":{"mode":"include"}}`...)
	return b
}

// appendDigits appends n zero-padded to width digits.
func appendDigits(b []byte, n, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
