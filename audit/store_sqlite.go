package audit

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

var sqliteDialect = dialect{
	name:         "sqlite",
	indexRelax:   "PRAGMA synchronous=NORMAL",
	indexRestore: "PRAGMA synchronous=FULL",
	tableExists:  "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?",
	// One B-tree of 16-byte rows: a search value costs one insert, not
	// three (table, (k, v) index, seq index) as text rows did.
	searchTable: "CREATE TABLE audit_search (h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (h, seq)) WITHOUT ROWID",
	ddl: []string{
		`CREATE TABLE IF NOT EXISTS audit_records (
			seq INTEGER PRIMARY KEY,
			kind TEXT NOT NULL,
			event_id TEXT NOT NULL,
			request_id TEXT NOT NULL,
			source TEXT NOT NULL,
			recorded TEXT NOT NULL,
			recorded_us INTEGER NOT NULL,
			body BLOB NOT NULL,
			prev TEXT NOT NULL,
			hash TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS audit_records_event ON audit_records (event_id, kind)`,
		`CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records (recorded_us)`,
		`CREATE TABLE IF NOT EXISTS audit_checkpoints (
			seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, created TEXT NOT NULL, jws TEXT NOT NULL)`,
	},
}

// OpenSQLite opens (creating if needed) the SQLite store at path.
//
// Durability: WAL journal with synchronous=FULL, so every commit fsyncs the
// WAL before Append returns; BEGIN IMMEDIATE takes the write lock at the
// start of each appending transaction, so two processes sharing the file
// still build one chain. busy_timeout lets a second writer wait instead of
// failing at once.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	v := url.Values{}
	v.Set("_journal_mode", "WAL")
	v.Set("_synchronous", "FULL")
	v.Set("_busy_timeout", "10000")
	v.Set("_txlock", "immediate")
	v.Add("_pragma", "foreign_keys(1)")
	// Statement journals (a multi-row INSERT inside a transaction keeps
	// one, to undo just that statement) in memory, not in a temporary
	// file written page by page.
	v.Add("_pragma", "temp_store(2)")
	// Checkpoint (copy the WAL into the database) every 4000 pages
	// (16 MiB) rather than 1000: an index page written by many commits is
	// copied once per checkpoint, not once per commit.
	v.Add("_pragma", "wal_autocheckpoint(4000)")
	// A WAL reset after a full checkpoint truncates it to this size.
	v.Add("_pragma", "journal_size_limit(67108864)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("audit: open sqlite %s: %w", path, err)
	}
	s := &sqlStore{db: db, d: sqliteDialect}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
