package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dialect is what differs between the SQL stores.
type dialect struct {
	name string
	ddl  []string
	// lock runs first in every appending transaction and takes the
	// database-wide write lock ("" when BEGIN already takes it, as SQLite's
	// BEGIN IMMEDIATE does).
	lock string
	// numbered placeholders ($1) instead of ?.
	numbered bool
}

// sqlStore implements Store over database/sql for both dialects.
type sqlStore struct {
	db *sql.DB
	d  dialect
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) q(query string) string {
	if !s.d.numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *sqlStore) migrate(ctx context.Context) error {
	for _, stmt := range s.d.ddl {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("audit: %s schema: %w", s.d.name, err)
		}
	}
	return nil
}

const recordCols = "seq, kind, event_id, request_id, source, recorded, body, prev, hash, recorded_us"

func (s *sqlStore) Append(ctx context.Context, recs []*Record) (err error) {
	if len(recs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if s.d.lock != "" {
		if _, err = tx.ExecContext(ctx, s.d.lock); err != nil {
			return fmt.Errorf("audit: lock: %w", err)
		}
	}
	var head Head
	err = tx.QueryRowContext(ctx, "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1").Scan(&head.Seq, &head.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("audit: read head: %w", err)
	}
	for _, r := range recs {
		r.Seq = head.Seq + 1
		r.Prev = head.Hash
		r.Hash = RecordHash(r)
		head = Head{Seq: r.Seq, Hash: r.Hash}
	}
	// Multi-row inserts: one round trip per chunk, not per record.
	const chunk = 50
	for i := 0; i < len(recs); i += chunk {
		part := recs[i:min(i+chunk, len(recs))]
		var sb strings.Builder
		sb.WriteString("INSERT INTO audit_records (" + recordCols + ") VALUES ")
		args := make([]any, 0, len(part)*10)
		for j, r := range part {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?,?,?)")
			args = append(args, r.Seq, r.Kind, r.EventID, r.RequestID, r.Source,
				r.Recorded.UTC().Format(time.RFC3339Nano), r.Body, r.Prev, r.Hash, r.Recorded.UnixMicro())
		}
		if _, err = tx.ExecContext(ctx, s.q(sb.String()), args...); err != nil {
			return fmt.Errorf("audit: insert records: %w", err)
		}
	}
	var refs []any
	for _, r := range recs {
		for _, ref := range r.Refs {
			refs = append(refs, ref.Key, ref.Value, r.Seq)
		}
	}
	const refChunk = 3 * 200
	for i := 0; i < len(refs); i += refChunk {
		part := refs[i:min(i+refChunk, len(refs))]
		var sb strings.Builder
		sb.WriteString("INSERT INTO audit_refs (k, v, seq) VALUES ")
		for j := 0; j < len(part); j += 3 {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?)")
		}
		if _, err = tx.ExecContext(ctx, s.q(sb.String()), part...); err != nil {
			return fmt.Errorf("audit: insert index: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("audit: commit: %w", err)
	}
	return nil
}

func (s *sqlStore) Head(ctx context.Context) (Head, error) {
	var h Head
	err := s.db.QueryRowContext(ctx, "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1").Scan(&h.Seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("audit: head: %w", err)
	}
	return h, nil
}

func (s *sqlStore) AddCheckpoint(ctx context.Context, cp Checkpoint) error {
	_, err := s.db.ExecContext(ctx, s.q("INSERT INTO audit_checkpoints (seq, hash, created, jws) VALUES (?,?,?,?) ON CONFLICT DO NOTHING"),
		cp.Seq, cp.Hash, cp.Created.UTC().Format(time.RFC3339Nano), cp.JWS)
	if err != nil {
		return fmt.Errorf("audit: checkpoint: %w", err)
	}
	return nil
}

func (s *sqlStore) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT seq, hash, created, jws FROM audit_checkpoints ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var cp Checkpoint
		var created string
		if err := rows.Scan(&cp.Seq, &cp.Hash, &created, &cp.JWS); err != nil {
			return nil, fmt.Errorf("audit: checkpoints: %w", err)
		}
		cp.Created, _ = time.Parse(time.RFC3339Nano, created)
		out = append(out, cp)
	}
	return out, rows.Err()
}

func scanRecord(rows interface{ Scan(...any) error }) (*Record, error) {
	var r Record
	var recorded string
	if err := rows.Scan(&r.Seq, &r.Kind, &r.EventID, &r.RequestID, &r.Source, &recorded, &r.Body, &r.Prev, &r.Hash, &r.recordedUS); err != nil {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, recorded)
	if err != nil {
		return nil, fmt.Errorf("record %d: recorded %q: %w", r.Seq, recorded, err)
	}
	r.Recorded = t
	return &r, nil
}

func (s *sqlStore) Scan(ctx context.Context, from int64, fn func(*Record) error) error {
	// Paged so a long verify does not hold one read transaction (and, on
	// SQLite, the WAL) open for the whole chain.
	const page = 1000
	for {
		rows, err := s.db.QueryContext(ctx, s.q("SELECT "+recordCols+" FROM audit_records WHERE seq >= ? ORDER BY seq LIMIT ?"), from, page)
		if err != nil {
			return fmt.Errorf("audit: scan: %w", err)
		}
		var recs []*Record
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("audit: scan: %w", err)
			}
			recs = append(recs, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("audit: scan: %w", err)
		}
		if len(recs) == 0 {
			return nil
		}
		if err := s.loadRefs(ctx, recs); err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(recs) < page {
			return nil
		}
		from = recs[len(recs)-1].Seq + 1
	}
}

// loadRefs fills Refs of recs (sorted by Seq) with one query for the page.
func (s *sqlStore) loadRefs(ctx context.Context, recs []*Record) error {
	bySeq := make(map[int64]*Record, len(recs))
	for _, r := range recs {
		bySeq[r.Seq] = r
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT k, v, seq FROM audit_refs WHERE seq >= ? AND seq <= ?"),
		recs[0].Seq, recs[len(recs)-1].Seq)
	if err != nil {
		return fmt.Errorf("audit: scan index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ref Ref
		var seq int64
		if err := rows.Scan(&ref.Key, &ref.Value, &seq); err != nil {
			return fmt.Errorf("audit: scan index: %w", err)
		}
		// Rows whose seq names no record here (a deleted record's index)
		// are ignored: the gap is reported by the chain check.
		if r, ok := bySeq[seq]; ok {
			r.Refs = append(r.Refs, ref)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: scan index: %w", err)
	}
	for _, r := range recs {
		slices.SortFunc(r.Refs, compareRef)
	}
	return nil
}

func (s *sqlStore) Search(ctx context.Context, q Query) ([]*Record, error) {
	var sb strings.Builder
	var args []any
	sb.WriteString("SELECT " + recordCols + " FROM audit_records WHERE kind = 'event'")
	if !q.Since.IsZero() {
		sb.WriteString(" AND recorded_us >= ?")
		args = append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		sb.WriteString(" AND recorded_us < ?")
		args = append(args, q.Until.UnixMicro())
	}
	if q.After > 0 {
		if q.Desc {
			sb.WriteString(" AND seq < ?")
		} else {
			sb.WriteString(" AND seq > ?")
		}
		args = append(args, q.After)
	}
	for _, g := range q.Refs {
		if len(g.Values) == 0 {
			continue
		}
		sb.WriteString(" AND seq IN (SELECT seq FROM audit_refs WHERE k = ? AND v IN (")
		args = append(args, g.Key)
		for i, v := range g.Values {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('?')
			args = append(args, v)
		}
		sb.WriteString("))")
	}
	if q.Desc {
		sb.WriteString(" ORDER BY seq DESC")
	} else {
		sb.WriteString(" ORDER BY seq")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	sb.WriteString(" LIMIT ?")
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.q(sb.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: search: %w", err)
	}
	defer rows.Close()
	var out []*Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("audit: search: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *sqlStore) Event(ctx context.Context, eventID string) (*Record, error) {
	row := s.db.QueryRowContext(ctx, s.q("SELECT "+recordCols+" FROM audit_records WHERE event_id = ? AND kind = 'event' ORDER BY seq LIMIT 1"), eventID)
	r, err := scanRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read event: %w", err)
	}
	return r, nil
}

func (s *sqlStore) Unfinished(ctx context.Context, source string) ([]*Record, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+recordCols+` FROM audit_records r
		WHERE r.kind = 'intent' AND r.source = ?
		AND NOT EXISTS (SELECT 1 FROM audit_records e WHERE e.event_id = r.event_id AND e.kind = 'event')
		ORDER BY r.seq`), source)
	if err != nil {
		return nil, fmt.Errorf("audit: unfinished intents: %w", err)
	}
	defer rows.Close()
	var out []*Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("audit: unfinished intents: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *sqlStore) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("audit: %s unreachable: %w", s.d.name, err)
	}
	return nil
}

func (s *sqlStore) Close() error { return s.db.Close() }
