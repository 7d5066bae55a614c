package fhirsample

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// handle routes one interaction (everything but a POST of a Bundle to the
// base) to its implementation. The caller holds the lock that fits the
// method.
func (v view) handle(req request) response {
	segs := req.segs
	if len(segs) == 0 {
		return fail(http.StatusBadRequest, "not-supported", "system-level search and history are not supported").response()
	}
	if segs[0] == "metadata" && len(segs) == 1 {
		if req.method != http.MethodGet {
			return methodNotAllowed(req)
		}
		return v.capabilities()
	}
	typ := segs[0]
	if !isType(typ) {
		return notFound("resource type %q is not supported by this server", typ).response()
	}
	switch len(segs) {
	case 1:
		switch req.method {
		case http.MethodGet:
			return v.search(typ, req, "")
		case http.MethodPost:
			return v.create(typ, req, "")
		}
	case 2:
		id := segs[1]
		switch {
		case id == "_search" && req.method == http.MethodGet:
			return v.search(typ, req, "")
		case id == "_history":
			return fail(http.StatusBadRequest, "not-supported", "type-level history is not supported").response()
		case req.method == http.MethodGet:
			return v.read(typ, id)
		case req.method == http.MethodPut:
			return v.update(typ, id, req)
		case req.method == http.MethodDelete:
			return v.delete(typ, id)
		}
	case 3:
		id, sub := segs[1], segs[2]
		switch {
		case req.method != http.MethodGet:
		case sub == "_history":
			return v.history(typ, id)
		case sub == "$everything" && typ == "Patient":
			return v.everything(id)
		case typ == "Patient" && isType(sub):
			return v.search(sub, req, id)
		}
	case 4:
		if segs[2] == "_history" && req.method == http.MethodGet {
			return v.vread(typ, segs[1], segs[3])
		}
	}
	if req.method == http.MethodGet {
		return notFound("no interaction is served at %s", strings.Join(segs, "/")).response()
	}
	return methodNotAllowed(req)
}

func methodNotAllowed(req request) response {
	return fail(http.StatusMethodNotAllowed, "not-supported", "%s is not supported on this path", req.method).response()
}

// idPattern is the R4 id datatype.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func (v view) read(typ, id string) response {
	ver := v.d.latest(typ, id)
	switch {
	case ver == nil:
		return notFound("%s/%s is not known", typ, id).response()
	case ver.deleted:
		return fail(http.StatusGone, "deleted", "%s/%s has been deleted", typ, id).response()
	}
	return resourceResponse(http.StatusOK, ver)
}

func (v view) vread(typ, id, vid string) response {
	n, err := strconv.Atoi(vid)
	hist := v.d.res[typ][id]
	if err != nil || n < 1 || n > len(hist) {
		return notFound("%s/%s/_history/%s is not known", typ, id, vid).response()
	}
	ver := hist[n-1]
	if ver.deleted {
		return fail(http.StatusGone, "deleted", "%s/%s/_history/%s is a deletion", typ, id, vid).response()
	}
	return resourceResponse(http.StatusOK, ver)
}

// resourceResponse answers with a stored version and its ETag.
func resourceResponse(status int, ver *version) response {
	return response{
		status: status,
		header: http.Header{
			"Etag":          {ver.etag()},
			"Last-Modified": {ver.lastUpdated.Format(http.TimeFormat)},
		},
		body: ver.raw,
	}
}

// resource returns the resource the request carries, checked to be of typ.
func (req request) resource(typ string) (map[string]any, *failure) {
	res := req.res
	if res == nil {
		if len(req.body) == 0 {
			return nil, badRequest("a %s resource is required in the body", typ)
		}
		var err error
		if res, err = decodeObject(req.body); err != nil {
			return nil, badRequest("the body is not a JSON resource: %v", err)
		}
	}
	if rt, _ := res["resourceType"].(string); rt != typ {
		return nil, badRequest("the body has resourceType %q, the URL names %s", rt, typ)
	}
	return res, nil
}

// create stores a new resource. The server assigns the id, ignoring any id
// in the body as FHIR requires; a transaction passes the id it reserved
// for a urn:uuid entry as id.
func (v view) create(typ string, req request, id string) response {
	res, f := req.resource(typ)
	if f != nil {
		return f.response()
	}
	if id == "" {
		id = v.d.newID(typ)
	}
	ver, err := v.d.put(typ, id, res, http.MethodPost, v.s.now())
	if err != nil {
		return badRequest("the resource cannot be stored: %v", err).response()
	}
	return v.written(http.StatusCreated, typ, id, ver, req)
}

// update stores a new version of typ/id, creating it if it does not exist
// (update-as-create). If-Match, when sent, must name the current version.
func (v view) update(typ, id string, req request) response {
	if !idPattern.MatchString(id) {
		return badRequest("%q is not a valid FHIR id", id).response()
	}
	res, f := req.resource(typ)
	if f != nil {
		return f.response()
	}
	if bodyID, _ := res["id"].(string); bodyID != id {
		return badRequest("the body's id %q does not match the URL's id %q", bodyID, id).response()
	}
	prev := v.d.latest(typ, id)
	if match := req.header.Get("If-Match"); match != "" {
		if prev == nil || prev.deleted || prev.etag() != match {
			return fail(http.StatusPreconditionFailed, "conflict", "If-Match %s does not name the current version of %s/%s", match, typ, id).response()
		}
	}
	ver, err := v.d.put(typ, id, res, http.MethodPut, v.s.now())
	if err != nil {
		return badRequest("the resource cannot be stored: %v", err).response()
	}
	status := http.StatusOK
	if prev == nil || prev.deleted {
		status = http.StatusCreated
	}
	return v.written(status, typ, id, ver, req)
}

// written answers a successful create or update.
func (v view) written(status int, typ, id string, ver *version, req request) response {
	resp := resourceResponse(status, ver)
	resp.header.Set("Location", v.base+"/"+typ+"/"+id+"/_history/"+strconv.Itoa(ver.versionID))
	if preferMinimal(req.header) {
		resp.body = nil
	}
	return resp
}

// delete removes typ/id. Deleting what does not exist, or no longer
// exists, succeeds too, as R4 allows.
func (v view) delete(typ, id string) response {
	if ver := v.d.latest(typ, id); ver == nil || ver.deleted {
		return response{status: http.StatusNoContent}
	}
	ver := v.d.remove(typ, id, v.s.now())
	return response{status: http.StatusNoContent, header: http.Header{"Etag": {ver.etag()}}}
}

// history answers history-instance: every version, newest first, with
// deletions as entries without a resource. It is not paged.
func (v view) history(typ, id string) response {
	hist := v.d.res[typ][id]
	if len(hist) == 0 {
		return notFound("%s/%s is not known", typ, id).response()
	}
	b := v.newBundle("history")
	total := len(hist)
	b.Total = &total
	b.Link = []bundleLink{{Relation: "self", URL: v.base + "/" + typ + "/" + id + "/_history"}}
	for _, ver := range slices.Backward(hist) {
		e := bundleEntry{
			FullURL:  v.base + "/" + typ + "/" + id,
			Resource: ver.raw,
			Request:  &entryRequest{Method: ver.method, URL: typ + "/" + id},
			Response: &entryResponse{Etag: ver.etag(), LastModified: ver.lastUpdated.Format("2006-01-02T15:04:05.000Z07:00")},
		}
		switch ver.method {
		case http.MethodPost:
			e.Request.URL = typ
			e.Response.Status = "201 Created"
		case http.MethodDelete:
			e.Response.Status = "204 No Content"
		default:
			e.Response.Status = "200 OK"
		}
		b.Entry = append(b.Entry, e)
	}
	return v.bundleResponse(b)
}
