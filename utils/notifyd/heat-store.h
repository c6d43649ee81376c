/*
 * The access index's storage layer: one small interface over two SQL
 * engines, an embedded SQLite database (the default: one file, WAL, so
 * that queries read while the service writes) and PostgreSQL (libpq,
 * for policy engines that query from other machines).  Everything
 * above it (applying records, scanning, queries) is written once, in
 * SQL both engines take: $1, $2, ... parameters numbered in the order
 * they appear, INSERT ... ON CONFLICT upserts, and the few spellings
 * that differ (greatest/least, column types) taken from the engine.
 *
 * The schema (version HS_SCHEMA) is created by the first writer and is
 * documented in docs/index.md for policy engines that query the
 * database directly.  A database of another version is refused before
 * anything is read or written.
 */
#ifndef _SCOUTFS_HEAT_STORE_H_
#define _SCOUTFS_HEAT_STORE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_SCHEMA		1
#define HS_DEFAULT_DB		"/var/lib/scoutfs-notify/heat.db"

/* what a failure was, so that callers can say it clearly and exit right */
enum hs_err {
	HS_E_NONE = 0,
	HS_E_OTHER,
	HS_E_LOCKED,		/* another writer holds the database: try again */
	HS_E_READONLY,		/* the database can't be written */
	HS_E_FULL,		/* no space left for it */
	HS_E_SCHEMA,		/* not a database of this schema version */
	HS_E_CONFLICT,		/* another ingest writes the same mount */
};

/* hs_step() */
#define HS_ROW		1
#define HS_DONE		0
#define HS_ERR		(-1)

struct hs;
struct hs_stmt;

struct hs_engine {
	const char *name;
	/* spellings */
	const char *t_int;		/* a 64 bit integer column */
	const char *t_blob;		/* bytes */
	const char *t_real;		/* a double */
	const char *files_suffix;	/* after the files table's definition */
	const char *fmax;		/* greatest of two values */
	const char *fmin;
	const char *path_key;		/* what files_path indexes (of path) */
	const char *begin;		/* begin a write transaction */
	const char *table_exists;	/* SQL: 1 row when table $1 exists */
	/*
	 * Whether files' path is written apart from the rest of the row
	 * and only where it changes (ha_upsert()).  SQLite rewrites an
	 * index entry of every column an UPDATE assigns, whether its value
	 * changed or not (it decides from the statement), and a file read
	 * again nearly always has the path it had: the upsert with the path
	 * in it took twice the time of one without.  PostgreSQL writes new
	 * entries into every index of an updated row anyway (last_use_ns,
	 * which files_cold indexes, changes, so no update is HOT), and the
	 * statement a row more cost it a third of the ingest's rate.
	 */
	bool path_apart;

	int (*open)(struct hs *h, const char *target, bool readonly, int busy_ms);
	void (*close)(struct hs *h);
	int (*exec)(struct hs *h, const char *sql);
	int (*prepare)(struct hs *h, struct hs_stmt **st, const char *sql);
	void (*bind_i64)(struct hs_stmt *st, int i, int64_t v);
	void (*bind_f64)(struct hs_stmt *st, int i, double v);
	void (*bind_blob)(struct hs_stmt *st, int i, const void *p, size_t len);
	void (*bind_text)(struct hs_stmt *st, int i, const char *s);
	int (*step)(struct hs_stmt *st);
	bool (*col_null)(struct hs_stmt *st, int c);
	int64_t (*col_i64)(struct hs_stmt *st, int c);
	double (*col_f64)(struct hs_stmt *st, int c);
	const void *(*col_blob)(struct hs_stmt *st, int c, size_t *len);
	int64_t (*changes)(struct hs_stmt *st);
	void (*reset)(struct hs_stmt *st);
	void (*finalize)(struct hs_stmt *st);
	/*
	 * Statements that return nothing may be sent without waiting for
	 * each one's answer until pipeline(h, false), which returns the
	 * first failure (NULL: the engine has no such mode).
	 */
	int (*pipeline)(struct hs *h, bool on);
};

struct hs {
	const struct hs_engine *e;
	void *conn;
	void *pipe;		/* the engine's pipeline state */
	bool readonly;
	enum hs_err kind;	/* of the last failure */
	char err[512];
	int nstmt;		/* statements prepared, for unique names */
	/* the decayed heat's parameters, from the meta table */
	double heat_period_s;
	double heat_loss;	/* a fraction, 0 < loss < 1 */
	int64_t created_ns;
};

/* the engines built in; NULL when this build has none of that kind */
extern const struct hs_engine hs_sqlite;
extern const struct hs_engine *const hs_postgres;

/*
 * Open the database at target: a postgresql:// or postgres:// URI for
 * PostgreSQL, anything else a SQLite file.  Writers (readonly false)
 * create the schema in an empty database with heat_period_s and
 * heat_loss (0: the defaults); readers get an error for an empty one.
 * Returns NULL with the reason in err (and *kind), nothing changed.
 */
struct hs *hs_open(const char *target, bool readonly, int busy_ms, double heat_period_s,
		   double heat_loss, char *err, size_t errlen, enum hs_err *kind);
void hs_close(struct hs *h);

/* set h->err and h->kind: always returns HS_ERR */
int hs_fail(struct hs *h, enum hs_err kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int hs_exec(struct hs *h, const char *sql);
int hs_begin(struct hs *h);
int hs_commit(struct hs *h);
void hs_rollback(struct hs *h);

/* prepare sql ($1, $2, ... in the order they appear) */
int hs_prepare(struct hs *h, struct hs_stmt **st, const char *sql);
/*
 * Prepare fmt after replacing each "@MAX" with the engine's greatest(),
 * "@MIN" with its least(), "@INT", "@BLOB", "@REAL" with its types.
 */
int hs_prepare_fmt(struct hs *h, struct hs_stmt **st, const char *fmt);

/* meta table values, NULL-terminated text; -1 if missing */
int hs_meta_get(struct hs *h, const char *key, char *val, size_t size);
int hs_meta_set(struct hs *h, const char *key, const char *val);
/* hs_meta_set()'s statement, to run again and again: $1 the key, $2 the value */
int hs_meta_prepare(struct hs *h, struct hs_stmt **st);

/* the first member of every engine's statement */
struct hs_stmt_head {
	struct hs *h;
};

static inline const struct hs_engine *hs_stmt_engine(struct hs_stmt *st)
{
	return ((struct hs_stmt_head *)st)->h->e;
}

static inline void hs_bi(struct hs_stmt *st, int i, int64_t v)
{
	hs_stmt_engine(st)->bind_i64(st, i, v);
}

static inline void hs_bf(struct hs_stmt *st, int i, double v)
{
	hs_stmt_engine(st)->bind_f64(st, i, v);
}

static inline void hs_bb(struct hs_stmt *st, int i, const void *p, size_t len)
{
	hs_stmt_engine(st)->bind_blob(st, i, p, len);
}

static inline void hs_bt(struct hs_stmt *st, int i, const char *s)
{
	hs_stmt_engine(st)->bind_text(st, i, s);
}

static inline int hs_step(struct hs_stmt *st)
{
	return hs_stmt_engine(st)->step(st);
}

static inline bool hs_cnull(struct hs_stmt *st, int c)
{
	return hs_stmt_engine(st)->col_null(st, c);
}

static inline int64_t hs_ci(struct hs_stmt *st, int c)
{
	return hs_stmt_engine(st)->col_i64(st, c);
}

static inline double hs_cf(struct hs_stmt *st, int c)
{
	return hs_stmt_engine(st)->col_f64(st, c);
}

static inline const void *hs_cb(struct hs_stmt *st, int c, size_t *len)
{
	return hs_stmt_engine(st)->col_blob(st, c, len);
}

static inline int64_t hs_changes(struct hs_stmt *st)
{
	return hs_stmt_engine(st)->changes(st);
}

static inline void hs_reset(struct hs_stmt *st)
{
	hs_stmt_engine(st)->reset(st);
}

void hs_finalize(struct hs_stmt *st);

/* run a statement that returns no rows, then reset it: 0 or HS_ERR */
int hs_run(struct hs_stmt *st);

/* between hs_pipeline(h, true) and (h, false), hs_run() need not wait */
int hs_pipeline(struct hs *h, bool on);

#endif
