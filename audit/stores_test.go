package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// storeKind is one store implementation under the shared suite.
type storeKind struct {
	name string
	// dsn returns a fresh, empty store's DSN; cleanup is registered on t.
	dsn func(t testing.TB) string
	// breakWrites makes every later insert fail (a full or read-only store).
	breakWrites func(t testing.TB, db *sql.DB)
}

const pgBase = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var sqliteKind = storeKind{
	name: "sqlite",
	dsn: func(t testing.TB) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "audit.db")
	},
	breakWrites: func(t testing.TB, db *sql.DB) {
		if _, err := db.Exec(`CREATE TRIGGER audit_full BEFORE INSERT ON audit_records
			BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
			t.Fatal(err)
		}
	},
}

var postgresKind = storeKind{
	name: "postgres",
	dsn: func(t testing.TB) string {
		admin, err := sql.Open("pgx", pgBase)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := admin.PingContext(ctx); err != nil {
			if os.Getenv("FHIRWALL_REQUIRE_PG") != "" {
				t.Fatalf("PostgreSQL at 127.0.0.1:5432 unreachable and FHIRWALL_REQUIRE_PG is set: %v", err)
			}
			t.Skipf("PostgreSQL at 127.0.0.1:5432 unreachable (%v); set FHIRWALL_REQUIRE_PG=1 to fail instead", err)
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "audit_test_" + hex.EncodeToString(b[:])
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			db, err := sql.Open("pgx", pgBase)
			if err != nil {
				return
			}
			defer db.Close()
			if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
		})
		return pgBase + "&search_path=" + schema
	},
	breakWrites: func(t testing.TB, db *sql.DB) {
		for _, stmt := range []string{
			`CREATE FUNCTION audit_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$`,
			`CREATE TRIGGER audit_full BEFORE INSERT ON audit_records FOR EACH ROW EXECUTE FUNCTION audit_full()`,
		} {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
	},
}

var storeKinds = []storeKind{sqliteKind, postgresKind}

// forEachStore runs fn as a subtest against every store: one suite, both
// stores.
func forEachStore(t *testing.T, fn func(t *testing.T, k storeKind)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { fn(t, k) })
	}
}

type testLog struct {
	*Log
	dsn string
	db  *sql.DB
}

func testOptions() Options {
	return Options{
		Source:             "gw-test",
		ServerAddr:         "10.0.0.5",
		CheckpointKey:      testKey,
		CheckpointEvery:    10,
		CheckpointInterval: time.Hour,
		WriteTimeout:       5 * time.Second,
	}
}

func openTestLog(t testing.TB, k storeKind, dsn string, opts Options) *testLog {
	t.Helper()
	if dsn == "" {
		dsn = k.dsn(t)
	}
	l, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("open %s: %v", k.name, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return &testLog{Log: l, dsn: dsn, db: l.store.(*sqlStore).db}
}

// rawExec runs SQL on the store behind the log's back (the tamperer).
func (tl *testLog) rawExec(t testing.TB, query string, args ...any) {
	t.Helper()
	st := tl.store.(*sqlStore)
	if _, err := tl.db.Exec(st.q(query), args...); err != nil {
		t.Fatalf("%s: %v", strings.SplitN(query, " ", 2)[0], err)
	}
}

func recordN(t testing.TB, l *Log, n int, edit func(i int, a *Access)) {
	t.Helper()
	for i := 0; i < n; i++ {
		a := agentAccess()
		a.RequestID = fmt.Sprintf("req-%04d", i)
		if edit != nil {
			edit(i, a)
		}
		if err := l.Record(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
}
