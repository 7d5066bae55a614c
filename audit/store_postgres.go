package audit

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// postgresDialect: the body is bytea, never jsonb, because jsonb reorders
// keys and would break the hash over the stored bytes. The advisory lock
// serialises appends from every gateway replica sharing the database, so
// the chain stays one sequence.
var postgresDialect = dialect{
	name:     "postgres",
	numbered: true,
	lock:     "SELECT pg_advisory_xact_lock(7046151273) ",
	// The index transaction does not wait for the WAL flush; the next
	// chain commit flushes it anyway.
	indexTxSetup: "SET LOCAL synchronous_commit = off",
	tableExists:  "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?",
	searchTable:  "CREATE TABLE audit_search (h BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (h, seq))",
	ddl: []string{
		`CREATE TABLE IF NOT EXISTS audit_records (
			seq BIGINT PRIMARY KEY,
			kind TEXT NOT NULL,
			event_id TEXT NOT NULL,
			request_id TEXT NOT NULL,
			source TEXT NOT NULL,
			recorded TEXT NOT NULL,
			recorded_us BIGINT NOT NULL,
			body BYTEA NOT NULL,
			prev TEXT NOT NULL,
			hash TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS audit_records_event ON audit_records (event_id, kind)`,
		`CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (recorded_us)`,
		`CREATE TABLE IF NOT EXISTS audit_checkpoints (
			seq BIGINT PRIMARY KEY, hash TEXT NOT NULL, created TEXT NOT NULL, jws TEXT NOT NULL)`,
	},
}

// OpenPostgres opens the PostgreSQL store at dsn (a postgres:// URL; a
// search_path parameter selects the schema). Durability relies on the
// server's synchronous_commit (on by default): COMMIT returns after the WAL
// is flushed.
func OpenPostgres(ctx context.Context, dsn string) (Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("audit: open postgres: %w", err)
	}
	db.SetMaxOpenConns(8)
	s := &sqlStore{db: db, d: postgresDialect}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
