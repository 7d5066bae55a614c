package fhirsample

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// bundle is the R4 Bundle as this server writes it. Entries hold the
// stored bytes of their resources, which are never re-encoded.
type bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *bundleMeta   `json:"meta,omitempty"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleMeta struct {
	LastUpdated string `json:"lastUpdated"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *entrySearch    `json:"search,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	Response *entryResponse  `json:"response,omitempty"`
}

type entrySearch struct {
	Mode string `json:"mode"`
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// newBundle starts a Bundle of the given type with a fresh id.
func (v view) newBundle(typ string) *bundle {
	n := v.s.bundles.Add(1)
	return &bundle{
		ResourceType: "Bundle",
		ID:           "bundle-" + strconv.FormatInt(n, 10),
		Meta:         &bundleMeta{LastUpdated: v.s.now().Format(time.RFC3339Nano)},
		Type:         typ,
	}
}

func (v view) bundleResponse(b *bundle) response {
	body, err := marshal(b)
	if err != nil {
		return fail(http.StatusInternalServerError, "exception", "the Bundle cannot be encoded").response()
	}
	return response{status: http.StatusOK, body: body}
}

// entryFor is the entry of a stored resource in a searchset.
func (v view) entryFor(typ, id string, ver *version, mode string) bundleEntry {
	return bundleEntry{
		FullURL:  v.base + "/" + typ + "/" + id,
		Resource: ver.raw,
		Search:   &entrySearch{Mode: mode},
	}
}

// statusLine is the form Bundle.entry.response.status takes.
func statusLine(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}
