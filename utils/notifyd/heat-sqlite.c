/*
 * The SQLite engine of heat-store.h: one database file in WAL mode, so
 * that queries read a consistent snapshot while the service writes,
 * synchronous=FULL, so that a transaction acknowledged to NATS has
 * reached the disk.  Writers take the write lock when their
 * transaction begins (BEGIN IMMEDIATE) and wait for another writer up
 * to the busy timeout; a database locked longer than that is an error
 * the caller reports, never a half-written transaction.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "heat-store.h"

/*
 * A writer's page cache (KiB): a transaction's upserts touch rows all
 * over the files table and its two indexes, and with SQLite's default
 * (2 MiB) they were read again and again, and the transaction's dirty
 * pages spilled to the WAL before its commit.
 */
#define SQ_WRITER_CACHE_KIB	"262144"

/*
 * A writer's statement journals in memory: a statement that may change
 * more than one row inside a transaction (the upsert of HA_UPSERT_ROWS
 * files) keeps the pages it changes in a statement journal, to undo
 * itself alone if it fails, and SQLite spills that to a temporary file
 * past 64 KiB: nine pwrite()s in ten of an ingest went there, two a
 * page, more than the WAL and the checkpoints together.  The journal
 * lives only as long as its statement; it never holds the data.
 */
#define SQ_WRITER_TEMP		"PRAGMA temp_store = MEMORY"

struct hs_stmt {
	struct hs_stmt_head head;
	sqlite3_stmt *s;
	int64_t changes;
};

static enum hs_err kind_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return HS_E_LOCKED;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return HS_E_READONLY;
	case SQLITE_FULL:
		return HS_E_FULL;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return HS_E_SCHEMA;
	}
	return HS_E_OTHER;
}

static int fail(struct hs *h, int rc, const char *what)
{
	return hs_fail(h, kind_of(rc), "sqlite: %s: %s", what, sqlite3_errmsg(h->conn));
}

/*
 * power(x, y), as PostgreSQL has it: SQLite builds without the math
 * functions (EL9's 3.34, say) don't, and the heat's upsert needs it.
 */
static void sql_power(sqlite3_context *c, int n, sqlite3_value **v)
{
	(void)n;
	if (sqlite3_value_type(v[0]) == SQLITE_NULL || sqlite3_value_type(v[1]) == SQLITE_NULL) {
		sqlite3_result_null(c);
		return;
	}
	sqlite3_result_double(c, pow(sqlite3_value_double(v[0]), sqlite3_value_double(v[1])));
}

static int sq_pragma(struct hs *h, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(h->conn, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		hs_fail(h, kind_of(rc), "sqlite: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return HS_ERR;
	}
	return 0;
}

static int sq_open(struct hs *h, const char *target, bool readonly, int busy_ms)
{
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	sqlite3 *db = NULL;
	struct stat st;
	int rc;

	if (readonly && stat(target, &st) && errno == ENOENT)
		return hs_fail(h, HS_E_SCHEMA, "no database at %s: nothing has been indexed yet"
			       " (ingest and scan make it)", target);
	rc = sqlite3_open_v2(target, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	h->conn = db;
	if (rc != SQLITE_OK)
		return hs_fail(h, kind_of(rc) == HS_E_OTHER && readonly ? HS_E_SCHEMA : kind_of(rc),
			       "sqlite: cannot open %s: %s", target,
			       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, busy_ms);
	sqlite3_create_function(db, "power", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				sql_power, NULL, NULL);
	if (readonly)
		return sq_pragma(h, "PRAGMA query_only = 1");
	if (sq_pragma(h, "PRAGMA journal_mode = WAL") || sq_pragma(h, "PRAGMA synchronous = FULL") ||
	    sq_pragma(h, "PRAGMA cache_size = -" SQ_WRITER_CACHE_KIB) || sq_pragma(h, SQ_WRITER_TEMP))
		return HS_ERR;
	return 0;
}

static void sq_close(struct hs *h)
{
	sqlite3_close(h->conn);
	h->conn = NULL;
}

static int sq_exec(struct hs *h, const char *sql)
{
	return sq_pragma(h, sql);
}

static int sq_prepare(struct hs *h, struct hs_stmt **out, const char *sql)
{
	struct hs_stmt *st = calloc(1, sizeof(*st));
	int rc;

	if (!st)
		return hs_fail(h, HS_E_OTHER, "out of memory");
	st->head.h = h;
	char want[16];
	const char *name;
	int i;

	rc = sqlite3_prepare_v2(h->conn, sql, -1, &st->s, NULL);
	if (rc != SQLITE_OK) {
		free(st);
		return fail(h, rc, "prepare");
	}
	/* SQLite numbers $N by first appearance: the SQL must have them in order */
	for (i = 1; i <= sqlite3_bind_parameter_count(st->s); i++) {
		snprintf(want, sizeof(want), "$%d", i);
		name = sqlite3_bind_parameter_name(st->s, i);
		if (!name || strcmp(name, want)) {
			sqlite3_finalize(st->s);
			free(st);
			return hs_fail(h, HS_E_OTHER, "sqlite: parameter %d of \"%.80s...\" is %s", i,
				       sql, name ? name : "unnamed");
		}
	}
	*out = st;
	return 0;
}

static void sq_bind_i64(struct hs_stmt *st, int i, int64_t v)
{
	sqlite3_bind_int64(st->s, i, v);
}

static void sq_bind_f64(struct hs_stmt *st, int i, double v)
{
	sqlite3_bind_double(st->s, i, v);
}

static void sq_bind_blob(struct hs_stmt *st, int i, const void *p, size_t len)
{
	if (!p)
		sqlite3_bind_null(st->s, i);
	else
		sqlite3_bind_blob64(st->s, i, len ? p : "", len, SQLITE_TRANSIENT);
}

static void sq_bind_text(struct hs_stmt *st, int i, const char *s)
{
	if (!s)
		sqlite3_bind_null(st->s, i);
	else
		sqlite3_bind_text(st->s, i, s, -1, SQLITE_TRANSIENT);
}

static int sq_step(struct hs_stmt *st)
{
	int rc = sqlite3_step(st->s);

	if (rc == SQLITE_ROW)
		return HS_ROW;
	if (rc == SQLITE_DONE) {
		st->changes = sqlite3_changes(st->head.h->conn);
		return HS_DONE;
	}
	return fail(st->head.h, sqlite3_errcode(st->head.h->conn), "step");
}

static bool sq_col_null(struct hs_stmt *st, int c)
{
	return sqlite3_column_type(st->s, c) == SQLITE_NULL;
}

static int64_t sq_col_i64(struct hs_stmt *st, int c)
{
	return sqlite3_column_int64(st->s, c);
}

static double sq_col_f64(struct hs_stmt *st, int c)
{
	return sqlite3_column_double(st->s, c);
}

static const void *sq_col_blob(struct hs_stmt *st, int c, size_t *len)
{
	const void *p;

	if (sqlite3_column_type(st->s, c) == SQLITE_NULL)
		return NULL;
	p = sqlite3_column_blob(st->s, c);
	*len = (size_t)sqlite3_column_bytes(st->s, c);
	return p ? p : "";
}

static int64_t sq_changes(struct hs_stmt *st)
{
	return st->changes;
}

static void sq_reset(struct hs_stmt *st)
{
	sqlite3_reset(st->s);
	sqlite3_clear_bindings(st->s);
}

static void sq_finalize(struct hs_stmt *st)
{
	sqlite3_finalize(st->s);
	free(st);
}

const struct hs_engine hs_sqlite = {
	.name = "sqlite",
	.t_int = "INTEGER",
	.t_blob = "BLOB",
	.t_real = "REAL",
	.files_suffix = " WITHOUT ROWID",
	.fmax = "MAX",
	.fmin = "MIN",
	.path_key = "path",
	.begin = "BEGIN IMMEDIATE",
	.table_exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1",
	.path_apart = true,
	.open = sq_open,
	.close = sq_close,
	.exec = sq_exec,
	.prepare = sq_prepare,
	.bind_i64 = sq_bind_i64,
	.bind_f64 = sq_bind_f64,
	.bind_blob = sq_bind_blob,
	.bind_text = sq_bind_text,
	.step = sq_step,
	.col_null = sq_col_null,
	.col_i64 = sq_col_i64,
	.col_f64 = sq_col_f64,
	.col_blob = sq_col_blob,
	.changes = sq_changes,
	.reset = sq_reset,
	.finalize = sq_finalize,
};
