package fhir

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestEveryReasonIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/reasons.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Reasons() {
		if !strings.Contains(string(doc), "`"+string(r)+"`") {
			t.Errorf("reason %s is not in docs/reasons.md", r)
		}
		if r.Display() == "" {
			t.Errorf("reason %s has no display text", r)
		}
	}
}

func TestWriteErrorHidesUnreasonedErrors(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, os.ErrPermission)
	if w.Code != 500 || strings.Contains(w.Body.String(), "permission") {
		t.Fatalf("an internal error leaked its text: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	WriteError(w, Errorf(ReasonScopeMissing, "no scope for %s", "Observation"))
	if w.Code != 403 || !strings.Contains(w.Body.String(), `"code":"scope-missing"`) ||
		w.Header().Get("Content-Type") != ContentTypeJSON {
		t.Fatalf("got %d %s %q", w.Code, w.Body, w.Header().Get("Content-Type"))
	}
}
