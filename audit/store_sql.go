package audit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
	// indexRelax runs on the writer connection before an index
	// transaction and indexRestore after it; indexTxSetup at the start of
	// each index transaction. They let index commits skip the fsync that
	// chain commits need.
	indexRelax, indexRestore, indexTxSetup string
	// tableExists counts tables named ? in the current schema.
	tableExists string
	// searchTable creates the search index: (h, seq) rows, h the
	// indexKey of one search value of the event at seq.
	searchTable string
}

// sqlStore implements Store over database/sql for both dialects.
type sqlStore struct {
	db *sql.DB
	d  dialect

	// stmts caches the prepared multi-row inserts by SQL text: a group
	// commit has one of a few shapes (rows per chunk), and parsing and
	// planning each again cost SQLite more than executing it.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
	w      *sql.Conn // see writerConn
}

// prepared returns tx's handle on the statement query, prepared once per
// store (and once per connection by database/sql).
func (s *sqlStore) prepared(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	st, ok := s.stmts[query]
	if !ok {
		var err error
		if st, err = s.db.PrepareContext(ctx, query); err != nil {
			s.stmtMu.Unlock()
			return nil, err
		}
		if s.stmts == nil {
			s.stmts = map[string]*sql.Stmt{}
		}
		s.stmts[query] = st
	}
	s.stmtMu.Unlock()
	return tx.StmtContext(ctx, st), nil
}

// rowChunks are the statement shapes execRows uses, largest first: any
// batch is a few of them, and a handful of shapes keeps the prepared
// statement cache (a compiled program per shape and connection) small.
var rowChunks = []int{64, 16, 4, 1}

// execRows runs "prefix (?,..),(?,..)" over args, width values per row.
func (s *sqlStore) execRows(ctx context.Context, tx *sql.Tx, prefix, suffix string, width int, args []any) error {
	row := "(" + strings.Repeat("?,", width-1) + "?)"
	for len(args) > 0 {
		rows := len(args) / width
		n := rowChunks[len(rowChunks)-1]
		for _, c := range rowChunks {
			if c <= rows {
				n = c
				break
			}
		}
		var sb strings.Builder
		sb.WriteString(prefix)
		for j := range n {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(row)
		}
		sb.WriteString(suffix)
		st, err := s.prepared(ctx, tx, s.q(sb.String()))
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, args[:n*width]...); err != nil {
			return err
		}
		args = args[n*width:]
	}
	return nil
}

// inTx runs fn in a transaction from begin whose first statement is
// first ("" for none: the append lock, or an index transaction's
// setting); it commits when fn returns nil and rolls back otherwise.
func (s *sqlStore) inTx(ctx context.Context, begin func(context.Context, *sql.TxOptions) (*sql.Tx, error), first string, fn func(*sql.Tx) error) error {
	tx, err := begin(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if first != "" {
		if _, err := tx.ExecContext(ctx, first); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

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
	if err := s.migrateIndex(ctx); err != nil {
		return fmt.Errorf("audit: %s schema: %w", s.d.name, err)
	}
	return nil
}

// migrateIndex creates the search index and its marks. A store from
// before them kept the index as (k, v, seq) text rows written in each
// record's own transaction; those rows are dropped here and the index is
// rebuilt from the hashed bodies by the next gateway that starts on the
// store (catchUpIndex). The check and the change share one transaction
// under the append lock.
func (s *sqlStore) migrateIndex(ctx context.Context) error {
	return s.inTx(ctx, s.db.BeginTx, s.d.lock, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(s.d.tableExists), "audit_search").Scan(&n); err != nil || n > 0 {
			return err
		}
		for _, stmt := range []string{
			"DROP TABLE IF EXISTS audit_refs",
			"DROP TABLE IF EXISTS audit_index_marks",
			s.d.searchTable,
			"CREATE TABLE audit_index_marks (source TEXT PRIMARY KEY, seq BIGINT NOT NULL)",
		} {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
}

const recordCols = "seq, kind, event_id, request_id, source, recorded, body, prev, hash, recorded_us"

func (s *sqlStore) Append(ctx context.Context, recs []*Record) error {
	if len(recs) == 0 {
		return nil
	}
	c, err := s.writerConn(ctx)
	if err != nil {
		return fmt.Errorf("audit: begin: %w", err)
	}
	begin := func(ctx context.Context, o *sql.TxOptions) (*sql.Tx, error) {
		tx, err := c.BeginTx(ctx, o)
		if err != nil {
			s.dropWriter() // a connection that cannot begin is not reused
		}
		return tx, err
	}
	err = s.inTx(ctx, begin, s.d.lock, func(tx *sql.Tx) error {
		var head Head
		headStmt, err := s.prepared(ctx, tx, "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
		if err != nil {
			return fmt.Errorf("read head: %w", err)
		}
		err = headStmt.QueryRowContext(ctx).Scan(&head.Seq, &head.Hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read head: %w", err)
		}
		for _, r := range recs {
			r.Seq = head.Seq + 1
			r.Prev = head.Hash
			r.Hash = RecordHash(r)
			head = Head{Seq: r.Seq, Hash: r.Hash}
		}
		// Multi-row inserts: one statement per chunk, not per record.
		args := make([]any, 0, len(recs)*10)
		for _, r := range recs {
			args = append(args, r.Seq, r.Kind, r.EventID, r.RequestID, r.Source,
				r.Recorded.UTC().Format(time.RFC3339Nano), r.Body, r.Prev, r.Hash, r.Recorded.UnixMicro())
		}
		if err := s.execRows(ctx, tx, "INSERT INTO audit_records ("+recordCols+") VALUES ", "", 10, args); err != nil {
			return fmt.Errorf("insert records: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// writerConn is the one connection every write of this store runs on: the
// log has a single writer, and one connection keeps its page cache (a
// connection drops it when another one has written) and its prepared
// statements warm.
func (s *sqlStore) writerConn(ctx context.Context) (*sql.Conn, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if s.w != nil {
		return s.w, nil
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	s.w = c
	return c, nil
}

// dropWriter closes the writer connection after an error that may have
// left it in an unknown state; the next write opens another.
func (s *sqlStore) dropWriter() {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if s.w != nil {
		_ = s.w.Raw(func(any) error { return driver.ErrBadConn })
		s.w.Close()
		s.w = nil
	}
}

func (s *sqlStore) Index(ctx context.Context, source string, rows []IndexRow, mark int64) (err error) {
	if len(rows) == 0 && mark <= 0 {
		return nil
	}
	c, err := s.writerConn(ctx)
	if err != nil {
		return fmt.Errorf("audit: index: %w", err)
	}
	// On SQLite the index commit skips the fsync (synchronous=NORMAL for
	// this transaction only): the index is derived from the hashed
	// bodies, and what a crash loses of it is rebuilt from the index
	// marks at the next start. If the chain's setting cannot be put back,
	// the connection is discarded: no chain commit may run without fsync.
	if s.d.indexRelax != "" {
		if _, err = c.ExecContext(ctx, s.d.indexRelax); err != nil {
			s.dropWriter()
			return fmt.Errorf("audit: index: %w", err)
		}
		defer func() {
			if _, rerr := c.ExecContext(context.WithoutCancel(ctx), s.d.indexRestore); rerr != nil {
				s.dropWriter()
				if err == nil {
					err = fmt.Errorf("audit: index: %w", rerr)
				}
			}
		}()
	}
	err = s.inTx(ctx, c.BeginTx, s.d.indexTxSetup, func(tx *sql.Tx) error {
		args := make([]any, 0, 2*len(rows))
		for _, r := range rows {
			args = append(args, r.Key, r.Seq)
		}
		// An event indexed twice (a catch-up racing its own gateway)
		// keeps one row per value.
		if err := s.execRows(ctx, tx, "INSERT INTO audit_search (h, seq) VALUES ", " ON CONFLICT DO NOTHING", 2, args); err != nil {
			return err
		}
		if mark <= 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit_index_marks (source, seq) VALUES (?, ?)
			ON CONFLICT (source) DO UPDATE SET seq = CASE WHEN excluded.seq > audit_index_marks.seq
			THEN excluded.seq ELSE audit_index_marks.seq END`), source, mark)
		return err
	})
	if err != nil {
		return fmt.Errorf("audit: index: %w", err)
	}
	return nil
}

func (s *sqlStore) IndexMarks(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT source, seq FROM audit_index_marks")
	if err != nil {
		return nil, fmt.Errorf("audit: index marks: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var src string
		var seq int64
		if err := rows.Scan(&src, &seq); err != nil {
			return nil, fmt.Errorf("audit: index marks: %w", err)
		}
		out[src] = seq
	}
	return out, rows.Err()
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

func (s *sqlStore) IndexedKeys(ctx context.Context, seq int64, keys []int64) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	var sb strings.Builder
	args := make([]any, 0, len(keys)+1)
	sb.WriteString("SELECT count(*) FROM audit_search WHERE seq = ? AND h IN (")
	args = append(args, seq)
	for i, h := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('?')
		args = append(args, h)
	}
	sb.WriteByte(')')
	var n int
	if err := s.db.QueryRowContext(ctx, s.q(sb.String()), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("audit: read index: %w", err)
	}
	return n, nil
}

// Search finds candidates through the hashed index, then keeps those whose
// body has the searched values (matchRefs): that makes a versioned entity
// search exact (the index keys entities without their version) and makes
// a hash collision, or a forged index row, return nothing extra.
func (s *sqlStore) Search(ctx context.Context, q Query) ([]*Record, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	var out []*Record
	for {
		page, err := s.searchPage(ctx, q, limit)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			ok, err := recordMatches(r, q.Refs)
			if err != nil {
				return nil, fmt.Errorf("audit: search: record %d: %w", r.Seq, err)
			}
			if ok {
				out = append(out, r)
				if len(out) == limit {
					return out, nil
				}
			}
		}
		if len(page) < limit {
			return out, nil
		}
		q.After = page[len(page)-1].Seq
	}
}

func (s *sqlStore) searchPage(ctx context.Context, q Query, limit int) ([]*Record, error) {
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
		sb.WriteString(" AND seq IN (SELECT seq FROM audit_search WHERE h IN (")
		for i, v := range g.Values {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('?')
			args = append(args, indexKey(g.Key, indexValue(g.Key, v)))
		}
		sb.WriteString("))")
	}
	if q.Desc {
		sb.WriteString(" ORDER BY seq DESC")
	} else {
		sb.WriteString(" ORDER BY seq")
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

func (s *sqlStore) Close() error {
	s.stmtMu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	s.stmtMu.Unlock()
	return s.db.Close()
}
