/*
 * See heat-store.h.  The schema is created here, once, in one
 * transaction; everything else goes through the engine's statements.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heat-store.h"

#define DEFAULT_PERIOD_S	3600.0
#define DEFAULT_LOSS		0.10

/*
 * Version 1.  Times are nanoseconds since the epoch (CLOCK_REALTIME of
 * the node that made the record, or of the scan), 0 for never; fsid is
 * the 64 bit filesystem id; unsigned 64 bit values are stored as their
 * signed bit pattern.  docs/index.md describes every column.
 */
static const char *const schema[] = {
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
	"CREATE TABLE mounts (id @INT PRIMARY KEY, fsid @INT NOT NULL, node TEXT NOT NULL,"
	" rid TEXT NOT NULL, next_seq @INT NOT NULL, records @INT NOT NULL,"
	" lost @INT NOT NULL, unknown @INT NOT NULL, first_ns @INT NOT NULL,"
	" last_ns @INT NOT NULL, attach_ns @INT NOT NULL, UNIQUE (fsid, node, rid))",
	"CREATE TABLE periods (mount_id @INT NOT NULL, start_seq @INT NOT NULL,"
	" start_ns @INT NOT NULL, end_ns @INT NOT NULL, attached @INT NOT NULL,"
	" PRIMARY KEY (mount_id, start_seq))",
	"CREATE TABLE gaps (mount_id @INT NOT NULL, first_seq @INT NOT NULL,"
	" last_seq @INT NOT NULL, lost @INT NOT NULL, from_ns @INT NOT NULL,"
	" to_ns @INT NOT NULL, PRIMARY KEY (mount_id, first_seq))",
	"CREATE TABLE files (fsid @INT NOT NULL, ino @INT NOT NULL, path @BLOB,"
	" path_ns @INT NOT NULL, first_ns @INT NOT NULL, seen_ns @INT NOT NULL,"
	" last_open_ns @INT NOT NULL, last_read_ns @INT NOT NULL,"
	" last_mmap_ns @INT NOT NULL, last_use_ns @INT NOT NULL, opens @INT NOT NULL,"
	" read_calls @INT NOT NULL, read_bytes @INT NOT NULL, mmaps @INT NOT NULL,"
	" last_uid @INT NOT NULL, last_mount @INT NOT NULL, heat @REAL NOT NULL,"
	" heat_ns @INT NOT NULL, PRIMARY KEY (fsid, ino))@FILES",
	"CREATE INDEX files_cold ON files (last_use_ns, fsid, ino)",
	"CREATE INDEX files_path ON files (@PATHKEY)",
	"CREATE TABLE scans (fsid @INT NOT NULL, start_ns @INT NOT NULL, end_ns @INT NOT NULL,"
	" root @BLOB NOT NULL, seen @INT NOT NULL, added @INT NOT NULL,"
	" removed @INT NOT NULL, complete @INT NOT NULL, PRIMARY KEY (fsid, start_ns))",
};

int hs_fail(struct hs *h, enum hs_err kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->err, sizeof(h->err), fmt, ap);
	va_end(ap);
	h->kind = kind;
	return HS_ERR;
}

/* fmt with the engine's spellings in place of @NAME; malloced */
static char *spell(const struct hs_engine *e, const char *fmt)
{
	static const char *const names[] = { "@MAX", "@MIN", "@INT", "@BLOB", "@REAL",
					     "@FILES", "@PATHKEY" };
	const char *vals[] = { e->fmax, e->fmin, e->t_int, e->t_blob, e->t_real,
			       e->files_suffix, e->path_key };
	size_t cap = strlen(fmt) * 4 + 64;
	char *out = malloc(cap);
	size_t o = 0;
	size_t i;
	size_t n;

	if (!out)
		return NULL;
	while (*fmt) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strncmp(fmt, names[i], strlen(names[i])))
				break;
		if (i < sizeof(names) / sizeof(names[0])) {
			n = strlen(vals[i]);
			if (o + n + 1 >= cap) {
				free(out);
				return NULL;
			}
			memcpy(out + o, vals[i], n);
			o += n;
			fmt += strlen(names[i]);
		} else {
			if (o + 2 >= cap) {
				free(out);
				return NULL;
			}
			out[o++] = *fmt++;
		}
	}
	out[o] = 0;
	return out;
}

int hs_exec(struct hs *h, const char *sql)
{
	return h->e->exec(h, sql);
}

int hs_begin(struct hs *h)
{
	return h->e->exec(h, h->e->begin);
}

int hs_commit(struct hs *h)
{
	return h->e->exec(h, "COMMIT");
}

void hs_rollback(struct hs *h)
{
	char keep[sizeof(h->err)];
	enum hs_err kind = h->kind;

	/* the reason for rolling back is what the caller reports */
	memcpy(keep, h->err, sizeof(keep));
	h->e->exec(h, "ROLLBACK");
	memcpy(h->err, keep, sizeof(keep));
	h->kind = kind;
}

int hs_prepare(struct hs *h, struct hs_stmt **st, const char *sql)
{
	return h->e->prepare(h, st, sql);
}

int hs_prepare_fmt(struct hs *h, struct hs_stmt **st, const char *fmt)
{
	char *sql = spell(h->e, fmt);
	int ret;

	if (!sql)
		return hs_fail(h, HS_E_OTHER, "out of memory");
	ret = h->e->prepare(h, st, sql);
	free(sql);
	return ret;
}

void hs_finalize(struct hs_stmt *st)
{
	if (st)
		hs_stmt_engine(st)->finalize(st);
}

int hs_run(struct hs_stmt *st)
{
	int ret = hs_step(st);

	hs_reset(st);
	return ret == HS_ERR ? HS_ERR : 0;
}

int hs_pipeline(struct hs *h, bool on)
{
	return h->e->pipeline ? h->e->pipeline(h, on) : 0;
}

int hs_meta_get(struct hs *h, const char *key, char *val, size_t size)
{
	struct hs_stmt *st;
	const void *p;
	size_t len;
	int ret = -1;

	if (hs_prepare(h, &st, "SELECT value FROM meta WHERE key = $1"))
		return -1;
	hs_bt(st, 1, key);
	if (hs_step(st) == HS_ROW) {
		p = hs_cb(st, 0, &len);
		if (p && len < size) {
			memcpy(val, p, len);
			val[len] = 0;
			ret = 0;
		}
	}
	hs_finalize(st);
	return ret;
}

int hs_meta_prepare(struct hs *h, struct hs_stmt **st)
{
	return hs_prepare(h, st, "INSERT INTO meta (key, value) VALUES ($1, $2)"
				 " ON CONFLICT (key) DO UPDATE SET value = excluded.value");
}

int hs_meta_set(struct hs *h, const char *key, const char *val)
{
	struct hs_stmt *st;
	int ret;

	if (hs_meta_prepare(h, &st))
		return HS_ERR;
	hs_bt(st, 1, key);
	hs_bt(st, 2, val);
	ret = hs_run(st);
	hs_finalize(st);
	return ret;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* a new database: every table and the meta values, in one transaction */
static int create_schema(struct hs *h, double period_s, double loss)
{
	char v[64];
	size_t i;
	char *sql;

	if (hs_begin(h))
		return HS_ERR;
	for (i = 0; i < sizeof(schema) / sizeof(schema[0]); i++) {
		sql = spell(h->e, schema[i]);
		if (!sql || hs_exec(h, sql)) {
			free(sql);
			if (!h->kind)
				hs_fail(h, HS_E_OTHER, "out of memory");
			hs_rollback(h);
			return HS_ERR;
		}
		free(sql);
	}
	snprintf(v, sizeof(v), "%d", HS_SCHEMA);
	if (hs_meta_set(h, "schema", v))
		goto fail;
	snprintf(v, sizeof(v), "%.17g", period_s);
	if (hs_meta_set(h, "heat_period_s", v))
		goto fail;
	snprintf(v, sizeof(v), "%.17g", loss);
	if (hs_meta_set(h, "heat_loss", v))
		goto fail;
	snprintf(v, sizeof(v), "%" PRId64, now_ns());
	if (hs_meta_set(h, "created_ns", v))
		goto fail;
	return hs_commit(h);
fail:
	hs_rollback(h);
	return HS_ERR;
}

static bool has_meta(struct hs *h, int *ret)
{
	struct hs_stmt *st;
	int r;

	*ret = 0;
	if (hs_prepare(h, &st, h->e->table_exists)) {
		*ret = HS_ERR;
		return false;
	}
	hs_bt(st, 1, "meta");
	r = hs_step(st);
	hs_finalize(st);
	if (r == HS_ERR)
		*ret = HS_ERR;
	return r == HS_ROW;
}

/* the schema version and the heat parameters of an existing database */
static int check_schema(struct hs *h)
{
	char v[64];
	char *end;

	if (hs_meta_get(h, "schema", v, sizeof(v)))
		return h->kind ? HS_ERR :
		       hs_fail(h, HS_E_SCHEMA, "not a scoutfs-notify-heat database (no schema version)");
	if (strcmp(v, "1"))
		return hs_fail(h, HS_E_SCHEMA, "database schema version %s; this build knows version %d only",
			       v, HS_SCHEMA);
	if (hs_meta_get(h, "heat_period_s", v, sizeof(v)))
		return hs_fail(h, HS_E_SCHEMA, "no heat_period_s in meta");
	h->heat_period_s = strtod(v, &end);
	if (hs_meta_get(h, "heat_loss", v, sizeof(v)))
		return hs_fail(h, HS_E_SCHEMA, "no heat_loss in meta");
	h->heat_loss = strtod(v, &end);
	if (!(h->heat_period_s > 0) || !(h->heat_loss > 0 && h->heat_loss < 1))
		return hs_fail(h, HS_E_SCHEMA, "bad heat parameters in meta");
	if (hs_meta_get(h, "created_ns", v, sizeof(v)) == 0)
		h->created_ns = strtoll(v, &end, 10);
	return 0;
}

static bool is_postgres(const char *t)
{
	return !strncmp(t, "postgresql://", 13) || !strncmp(t, "postgres://", 11);
}

struct hs *hs_open(const char *target, bool readonly, int busy_ms, double heat_period_s,
		   double heat_loss, char *err, size_t errlen, enum hs_err *kind)
{
	const struct hs_engine *e = is_postgres(target) ? hs_postgres : &hs_sqlite;
	struct hs *h;
	int r;

	*kind = HS_E_OTHER;
	if (!e) {
		snprintf(err, errlen, "this build has no PostgreSQL support (libpq was not found when it was built)");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->e = e;
	h->readonly = readonly;
	if (e->open(h, target, readonly, busy_ms))
		goto fail;
	if (!has_meta(h, &r)) {
		if (r)
			goto fail;
		if (readonly) {
			hs_fail(h, HS_E_SCHEMA, "the database is empty: nothing has been indexed yet");
			goto fail;
		}
		if (create_schema(h, heat_period_s > 0 ? heat_period_s : DEFAULT_PERIOD_S,
				  heat_loss > 0 ? heat_loss : DEFAULT_LOSS))
			goto fail;
	}
	if (check_schema(h))
		goto fail;
	return h;
fail:
	snprintf(err, errlen, "%s", h->err);
	*kind = h->kind ? h->kind : HS_E_OTHER;
	hs_close(h);
	return NULL;
}

void hs_close(struct hs *h)
{
	if (!h)
		return;
	if (h->conn)
		h->e->close(h);
	free(h);
}

#ifndef HEAT_PG
const struct hs_engine *const hs_postgres = NULL;
#endif
