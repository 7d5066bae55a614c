package fhirsample

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// version is one stored version of a resource. It is immutable once stored:
// readers share it without copying.
type version struct {
	raw         []byte         // the resource as served; nil when deleted
	res         map[string]any // raw decoded, for search; read-only
	versionID   int
	lastUpdated time.Time
	deleted     bool
	method      string // the interaction that made it: POST, PUT or DELETE
}

// db is the whole database: every version of every resource, by type and
// id, and the order in which ids were first created (search results come
// in that order). A transaction works on a clone and swaps it in on
// success, so a clone must never share anything it could modify.
type db struct {
	res   map[string]map[string][]*version
	order map[string][]string
	seq   int // last server-assigned id number
}

func newDB() *db {
	d := &db{res: map[string]map[string][]*version{}, order: map[string][]string{}}
	for _, t := range resourceTypes {
		d.res[t] = map[string][]*version{}
	}
	return d
}

// clone returns a copy of d that can be changed without changing d.
// Versions are immutable and shared; the slices are clipped so that an
// append on either side reallocates rather than writing into the other.
func (d *db) clone() *db {
	c := &db{res: make(map[string]map[string][]*version, len(d.res)), order: make(map[string][]string, len(d.order)), seq: d.seq}
	for t, ids := range d.res {
		m := make(map[string][]*version, len(ids))
		for id, hist := range ids {
			m[id] = slices.Clip(hist)
		}
		c.res[t] = m
	}
	for t, ids := range d.order {
		c.order[t] = slices.Clip(ids)
	}
	return c
}

// latest returns the newest version of typ/id, or nil when it never
// existed. The version may be a deletion.
func (d *db) latest(typ, id string) *version {
	hist := d.res[typ][id]
	if len(hist) == 0 {
		return nil
	}
	return hist[len(hist)-1]
}

// live calls fn for every resource of typ that is not deleted, in creation
// order, until fn returns false.
func (d *db) live(typ string, fn func(id string, v *version) bool) {
	for _, id := range d.order[typ] {
		if v := d.latest(typ, id); v != nil && !v.deleted {
			if !fn(id, v) {
				return
			}
		}
	}
}

// newID returns an id no resource of typ has ever had.
func (d *db) newID(typ string) string {
	for {
		d.seq++
		id := strings.ToLower(typ) + "-" + strconv.Itoa(d.seq)
		if d.latest(typ, id) == nil {
			return id
		}
	}
}

// put stores res as the next version of typ/id. It sets id,
// meta.versionId and meta.lastUpdated and keeps the rest of meta.
func (d *db) put(typ, id string, res map[string]any, method string, now time.Time) (*version, error) {
	vid := 1
	if prev := d.latest(typ, id); prev != nil {
		vid = prev.versionID + 1
	}
	res = maps.Clone(res)
	res["resourceType"] = typ
	res["id"] = id
	meta, _ := res["meta"].(map[string]any)
	meta = maps.Clone(meta)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["versionId"] = strconv.Itoa(vid)
	meta["lastUpdated"] = now.UTC().Format(time.RFC3339Nano)
	res["meta"] = meta
	raw, err := encodeResource(res)
	if err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", typ, id, err)
	}
	// Decode what is served so that search sees exactly what clients see.
	parsed, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", typ, id, err)
	}
	v := &version{raw: raw, res: parsed, versionID: vid, lastUpdated: now.UTC(), method: method}
	d.append(typ, id, v)
	return v, nil
}

// remove records the deletion of typ/id as a new version.
func (d *db) remove(typ, id string, now time.Time) *version {
	prev := d.latest(typ, id)
	v := &version{versionID: prev.versionID + 1, lastUpdated: now.UTC(), deleted: true, method: "DELETE"}
	d.append(typ, id, v)
	return v
}

func (d *db) append(typ, id string, v *version) {
	if len(d.res[typ][id]) == 0 {
		d.order[typ] = append(d.order[typ], id)
	}
	d.res[typ][id] = append(d.res[typ][id], v)
}

// etag is the weak ETag of a version, as FHIR defines it.
func (v *version) etag() string { return `W/"` + strconv.Itoa(v.versionID) + `"` }

// marshal encodes v as compact JSON without HTML escaping: FHIR narrative
// is XHTML and real servers send "<div", not "\u003cdiv".
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// leadingKeys come first in a serialised resource, as in most FHIR
// servers' output; the other keys follow in sorted order.
var leadingKeys = []string{"resourceType", "id", "meta", "text"}

// encodeResource serialises a resource with resourceType first, so that a
// streaming consumer learns the type before anything else.
func encodeResource(res map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	write := func(k string, v any) error {
		b, err := marshal(v)
		if err != nil {
			return err
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		kb, _ := marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(b)
		return nil
	}
	for _, k := range leadingKeys {
		if v, ok := res[k]; ok {
			if err := write(k, v); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(res)) {
		if slices.Contains(leadingKeys, k) {
			continue
		}
		if err := write(k, res[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// decodeObject parses a JSON object, keeping numbers as written.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	if m == nil {
		return nil, fmt.Errorf("body is not a JSON object")
	}
	return m, nil
}
