package fhir

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// maxEntries bounds the entries of one batch or transaction, so that one
// request cannot make classification and decision arbitrarily expensive.
const maxEntries = 10000

// classifyEntries classifies every entry of a batch or transaction Bundle.
// An entry that cannot be classified keeps its refusal in Entry.Err; the
// Bundle as a whole is refused only when it is malformed.
func (c Classifier) classifyEntries(r *Request) error {
	entries := gjson.GetBytes(r.Body, "entry")
	if !entries.Exists() {
		return nil
	}
	if !entries.IsArray() {
		return Errorf(ReasonRequestInvalid, "Bundle.entry must be an array")
	}
	var err error
	entries.ForEach(func(_, e gjson.Result) bool {
		if len(r.Entries) >= maxEntries {
			err = Errorf(ReasonRequestInvalid, "the Bundle has more than %d entries", maxEntries)
			return false
		}
		entry := Entry{Index: len(r.Entries), FullURL: e.Get("fullUrl").String()}
		entry.Request, entry.Err = c.classifyEntry(e)
		if entry.Err != nil {
			entry.Request = nil
		}
		r.Entries = append(r.Entries, entry)
		return true
	})
	return err
}

func (c Classifier) classifyEntry(e gjson.Result) (*Request, error) {
	if !e.IsObject() {
		return nil, Errorf(ReasonRequestInvalid, "a Bundle entry must be an object")
	}
	req := e.Get("request")
	method := req.Get("method").String()
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	case "HEAD":
		return nil, Errorf(ReasonNotSupported, "HEAD entries are not supported")
	default:
		return nil, Errorf(ReasonRequestInvalid, "entry request.method %s is not a FHIR method", safeToken(method))
	}
	rawURL := req.Get("url").String()
	if rawURL == "" {
		return nil, Errorf(ReasonRequestInvalid, "entry request.url is missing")
	}
	rel, err := c.relativeURL(rawURL)
	if err != nil {
		return nil, err
	}
	path, query, _ := strings.Cut(rel, "?")
	if strings.IndexByte(path, '#') >= 0 {
		return nil, Errorf(ReasonPathInvalid, "entry request.url has a fragment")
	}
	header := http.Header{}
	var body []byte
	if res := e.Get("resource"); res.Exists() {
		body = []byte(res.Raw)
		header.Set("Content-Type", "application/fhir+json")
		if method == http.MethodPatch && res.Get("resourceType").String() == "Binary" {
			// A JSON Patch travels in a Binary inside a Bundle.
			if ct := res.Get("contentType").String(); ct != "application/json-patch+json" {
				return nil, Errorf(ReasonNotAcceptable, "a Binary patch must be application/json-patch+json, not %s", safeToken(ct))
			}
			body, err = base64.StdEncoding.DecodeString(res.Get("data").String())
			if err != nil {
				return nil, Wrap(ReasonRequestInvalid, err, "the Binary patch data is not base64")
			}
			// The decoded patch was not part of the Bundle's JSON check.
			if err := checkJSON(body); err != nil {
				return nil, err
			}
			header.Set("Content-Type", "application/json-patch+json")
		}
	}
	if ine := req.Get("ifNoneExist").String(); ine != "" {
		header.Set("If-None-Exist", ine)
	}
	return c.classify(method, "/"+path, query, header, body, 1)
}

// relativeURL returns an entry URL relative to the base. Relative URLs are
// taken as they are (a leading "/" is refused: it is relative to the
// server root, not to the FHIR base). Absolute URLs must start with one of
// the Classifier's bases.
func (c Classifier) relativeURL(u string) (string, error) {
	if strings.Contains(u, "://") || strings.HasPrefix(u, "//") {
		for _, base := range c.Bases {
			base = strings.TrimSuffix(base, "/")
			if base == "" {
				continue
			}
			if rest, ok := strings.CutPrefix(u, base); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
				return strings.TrimPrefix(rest, "/"), nil
			}
		}
		return "", Errorf(ReasonRequestInvalid, "entry request.url is absolute and does not start with this server's base")
	}
	if strings.HasPrefix(u, "/") || strings.Contains(u, ":") && !strings.Contains(u, "?") {
		// "/Patient/1" (server-root relative) and "urn:..." or "mailto:..."
		// schemes are not FHIR entry URLs.
		return "", Errorf(ReasonRequestInvalid, "entry request.url is neither relative to the base nor absolute")
	}
	return u, nil
}
