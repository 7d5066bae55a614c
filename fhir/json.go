package fhir

import (
	"bytes"
	"errors"
	"io"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/tidwall/gjson"
)

// checkJSON refuses a body that is not exactly one valid JSON value, holds
// invalid UTF-8, or repeats a member name in any object. Duplicate names are
// the classic parser-differential: fhirwall would read the first
// "resourceType" or "subject" while the upstream keeps the last.
func checkJSON(body []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if err := dec.SkipValue(); err != nil {
		return Wrap(ReasonRequestInvalid, err, "the body is not valid JSON (or repeats a member name)")
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return Errorf(ReasonRequestInvalid, "the body holds more than one JSON value")
	}
	return nil
}

// bodyTypeAndID returns the resourceType and id of a JSON object body.
func bodyTypeAndID(body []byte) (string, string) {
	res := gjson.GetManyBytes(body, "resourceType", "id")
	var t, id string
	if res[0].Type == gjson.String {
		t = res[0].Str
	}
	if res[1].Type == gjson.String {
		id = res[1].Str
	}
	return t, id
}

func bundleType(body []byte) string {
	v := gjson.GetBytes(body, "type")
	if v.Type != gjson.String {
		return ""
	}
	return v.Str
}
