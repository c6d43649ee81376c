/*
 * The PostgreSQL engine of heat-store.h, on libpq.  Statements are
 * prepared once on the server; parameters go as text (numbers) or
 * binary (bytes), results come back one row at a time (single-row
 * mode), so that a full cold list of millions of files is streamed,
 * not held in memory.  A lock held by another session longer than the
 * busy timeout (lock_timeout), a read-only database or role, or a full
 * disk end the transaction with an error the caller reports, never
 * half of it.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "heat-store.h"

#define PG_MAX_PARAMS	640	/* heat-apply.c's upsert of 32 rows has 576 */
#define PIPE_SYNC	1000	/* statements between syncs: their answers fit the socket */
#define BYTEAOID	17

struct pgpipe {
	bool on;
	bool failed;
	int queued;
};

struct hs_stmt {
	struct hs_stmt_head head;
	char name[24];
	int nparams;
	const char *vals[PG_MAX_PARAMS];
	int lens[PG_MAX_PARAMS];
	int fmts[PG_MAX_PARAMS];
	char num[PG_MAX_PARAMS][32];
	char *owned[PG_MAX_PARAMS];
	bool running;
	PGresult *row;
	int64_t changes;
	unsigned char *buf;	/* a decoded bytea */
	size_t buf_cap;
};

/* SQLSTATE classes and codes that say what kind of failure it was */
static enum hs_err kind_of(const char *state)
{
	if (!state)
		return HS_E_OTHER;
	if (!strcmp(state, "55P03") || !strcmp(state, "40P01") || !strcmp(state, "40001"))
		return HS_E_LOCKED;
	if (!strcmp(state, "25006") || !strcmp(state, "42501"))
		return HS_E_READONLY;
	if (!strncmp(state, "53", 2))
		return HS_E_FULL;
	return HS_E_OTHER;
}

static int fail_res(struct hs *h, PGresult *r, const char *what)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(h->conn);
	char m[400];
	size_t n;

	snprintf(m, sizeof(m), "%s", msg && *msg ? msg : PQerrorMessage(h->conn));
	n = strlen(m);
	while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
		m[--n] = 0;
	return hs_fail(h, kind_of(state), "postgresql: %s: %s%s%s%s", what, m,
		       state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
}

static int pg_exec(struct hs *h, const char *sql)
{
	PGresult *r = PQexec(h->conn, sql);
	int ret = 0;

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		ret = fail_res(h, r, sql);
	PQclear(r);
	return ret;
}

static int pg_open(struct hs *h, const char *target, bool readonly, int busy_ms)
{
	char sql[96];

	h->conn = PQconnectdb(target);
	if (PQstatus(h->conn) != CONNECTION_OK) {
		hs_fail(h, HS_E_OTHER, "postgresql: cannot connect: %s", PQerrorMessage(h->conn));
		PQfinish(h->conn);
		h->conn = NULL;
		return HS_ERR;
	}
	/* no notices on stderr (CREATE TABLE ... "will create implicit index") */
	if (pg_exec(h, "SET client_min_messages = warning"))
		return HS_ERR;
	snprintf(sql, sizeof(sql), "SET lock_timeout = %d", busy_ms);
	if (pg_exec(h, sql))
		return HS_ERR;
	if (readonly && pg_exec(h, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))
		return HS_ERR;
	return 0;
}

static void pg_close(struct hs *h)
{
	PQfinish(h->conn);
	h->conn = NULL;
	free(h->pipe);
	h->pipe = NULL;
}

/* the number of $N parameters in sql: the highest N */
static int count_params(const char *sql)
{
	int n = 0;
	int v;

	for (; *sql; sql++) {
		if (*sql == '$' && sql[1] >= '1' && sql[1] <= '9') {
			v = atoi(sql + 1);
			if (v > n)
				n = v;
		}
	}
	return n;
}

static int pg_prepare(struct hs *h, struct hs_stmt **out, const char *sql)
{
	struct hs_stmt *st;
	PGresult *r;

	st = calloc(1, sizeof(*st));
	if (!st)
		return hs_fail(h, HS_E_OTHER, "out of memory");
	st->head.h = h;
	st->nparams = count_params(sql);
	if (st->nparams > PG_MAX_PARAMS) {
		free(st);
		return hs_fail(h, HS_E_OTHER, "too many parameters");
	}
	snprintf(st->name, sizeof(st->name), "hs%d", ++h->nstmt);
	r = PQprepare(h->conn, st->name, sql, st->nparams, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fail_res(h, r, "prepare");
		PQclear(r);
		free(st);
		return HS_ERR;
	}
	PQclear(r);
	*out = st;
	return 0;
}

static void set_num(struct hs_stmt *st, int i)
{
	st->vals[i - 1] = st->num[i - 1];
	st->fmts[i - 1] = 0;
}

static void pg_bind_i64(struct hs_stmt *st, int i, int64_t v)
{
	snprintf(st->num[i - 1], sizeof(st->num[0]), "%" PRId64, v);
	set_num(st, i);
}

static void pg_bind_f64(struct hs_stmt *st, int i, double v)
{
	snprintf(st->num[i - 1], sizeof(st->num[0]), "%.17g", v);
	set_num(st, i);
}

static void pg_bind_blob(struct hs_stmt *st, int i, const void *p, size_t len)
{
	free(st->owned[i - 1]);
	st->owned[i - 1] = NULL;
	if (!p) {
		st->vals[i - 1] = NULL;
		return;
	}
	st->owned[i - 1] = malloc(len ? len : 1);
	if (st->owned[i - 1] && len)
		memcpy(st->owned[i - 1], p, len);
	st->vals[i - 1] = st->owned[i - 1];
	st->lens[i - 1] = (int)len;
	st->fmts[i - 1] = 1;
}

static void pg_bind_text(struct hs_stmt *st, int i, const char *s)
{
	free(st->owned[i - 1]);
	st->owned[i - 1] = s ? strdup(s) : NULL;
	st->vals[i - 1] = st->owned[i - 1];
	st->fmts[i - 1] = 0;
}

/* read results to the end of the statement */
static void drain(struct hs_stmt *st)
{
	PGresult *r;

	PQclear(st->row);
	st->row = NULL;
	while ((r = PQgetResult(st->head.h->conn)))
		PQclear(r);
	st->running = false;
}

/* what a pipeline's statements answered, up to its sync point: 0 or HS_ERR */
static int pipe_drain(struct hs *h)
{
	struct pgpipe *pp = h->pipe;
	ExecStatusType t;
	PGresult *r;

	if (!PQpipelineSync(h->conn))
		return fail_res(h, NULL, "pipeline sync");
	for (;;) {
		r = PQgetResult(h->conn);
		if (!r && PQstatus(h->conn) == CONNECTION_BAD) {
			pp->failed = true;
			pp->queued = 0;
			return fail_res(h, NULL, "pipeline");
		}
		if (!r)
			continue;	/* the end of one statement's answer */
		t = PQresultStatus(r);
		if (t == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK && !pp->failed) {
			fail_res(h, r, t == PGRES_PIPELINE_ABORTED ? "pipeline" : "statement");
			pp->failed = true;
		}
		PQclear(r);
	}
	pp->queued = 0;
	return pp->failed ? HS_ERR : 0;
}

static int pg_pipeline(struct hs *h, bool on)
{
	struct pgpipe *pp = h->pipe;
	int ret = 0;

	if (on) {
		if (!pp) {
			pp = h->pipe = calloc(1, sizeof(*pp));
			if (!pp)
				return hs_fail(h, HS_E_OTHER, "out of memory");
		}
		pp->queued = 0;
		pp->failed = false;
		pp->on = PQenterPipelineMode(h->conn) == 1;
		return pp->on ? 0 : fail_res(h, NULL, "pipeline mode");
	}
	if (!pp || !pp->on)
		return 0;
	if (pp->queued || pp->failed)
		ret = pipe_drain(h);
	pp->on = false;
	PQexitPipelineMode(h->conn);
	return ret;
}

/* in a pipeline: send, and read the answers every PIPE_SYNC statements */
static int pipe_step(struct hs_stmt *st)
{
	struct hs *h = st->head.h;
	struct pgpipe *pp = h->pipe;

	if (pp->failed)
		return HS_ERR;
	if (!PQsendQueryPrepared(h->conn, st->name, st->nparams, st->vals, st->lens, st->fmts, 0))
		return fail_res(h, NULL, "send");
	st->changes = 1;
	if (++pp->queued >= PIPE_SYNC && pipe_drain(h))
		return HS_ERR;
	return HS_DONE;
}

static int pg_step(struct hs_stmt *st)
{
	struct hs *h = st->head.h;
	PGresult *r;
	int ret;

	if (h->pipe && ((struct pgpipe *)h->pipe)->on)
		return pipe_step(st);
	if (!st->running) {
		if (!PQsendQueryPrepared(h->conn, st->name, st->nparams, st->vals, st->lens,
					 st->fmts, 0))
			return fail_res(h, NULL, "send");
		PQsetSingleRowMode(h->conn);
		st->running = true;
	}
	PQclear(st->row);
	st->row = NULL;
	r = PQgetResult(h->conn);
	if (!r) {
		st->running = false;
		return HS_DONE;
	}
	switch (PQresultStatus(r)) {
	case PGRES_SINGLE_TUPLE:
		st->row = r;
		return HS_ROW;
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
		st->changes = strtoll(PQcmdTuples(r), NULL, 10);
		PQclear(r);
		drain(st);
		return HS_DONE;
	default:
		ret = fail_res(h, r, "statement");
		PQclear(r);
		drain(st);
		return ret;
	}
}

static bool pg_col_null(struct hs_stmt *st, int c)
{
	return !st->row || PQgetisnull(st->row, 0, c);
}

static int64_t pg_col_i64(struct hs_stmt *st, int c)
{
	return pg_col_null(st, c) ? 0 : strtoll(PQgetvalue(st->row, 0, c), NULL, 10);
}

static double pg_col_f64(struct hs_stmt *st, int c)
{
	return pg_col_null(st, c) ? 0 : strtod(PQgetvalue(st->row, 0, c), NULL);
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* bytea comes as text, "\x" and two hex digits a byte (bytea_output hex) */
static const void *pg_col_blob(struct hs_stmt *st, int c, size_t *len)
{
	const char *v;
	size_t n;
	size_t i;

	if (pg_col_null(st, c))
		return NULL;
	v = PQgetvalue(st->row, 0, c);
	n = (size_t)PQgetlength(st->row, 0, c);
	if (PQftype(st->row, c) != BYTEAOID) {
		*len = n;
		return v;
	}
	if (n < 2 || v[0] != '\\' || v[1] != 'x')
		return NULL;
	n = (n - 2) / 2;
	if (n + 1 > st->buf_cap) {
		unsigned char *b = realloc(st->buf, n + 1);

		if (!b)
			return NULL;
		st->buf = b;
		st->buf_cap = n + 1;
	}
	for (i = 0; i < n; i++)
		st->buf[i] = (unsigned char)(hexval(v[2 + 2 * i]) << 4 | hexval(v[3 + 2 * i]));
	*len = n;
	return st->buf;
}

static int64_t pg_changes(struct hs_stmt *st)
{
	return st->changes;
}

static void pg_reset(struct hs_stmt *st)
{
	int i;

	if (st->running)
		drain(st);
	for (i = 0; i < st->nparams; i++) {
		free(st->owned[i]);
		st->owned[i] = NULL;
		st->vals[i] = NULL;
	}
}

static void pg_finalize(struct hs_stmt *st)
{
	char sql[64];

	pg_reset(st);
	snprintf(sql, sizeof(sql), "DEALLOCATE %s", st->name);
	PQclear(PQexec(st->head.h->conn, sql));
	free(st->buf);
	free(st);
}

static const struct hs_engine engine = {
	.name = "postgresql",
	.t_int = "BIGINT",
	.t_blob = "BYTEA",
	.t_real = "DOUBLE PRECISION",
	.files_suffix = "",
	.fmax = "GREATEST",
	.fmin = "LEAST",
	/* btree entries must fit a third of a page: paths are longer */
	.path_key = "substring(path from 1 for 1024)",
	.begin = "BEGIN",
	.table_exists = "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
			" AND tablename = $1",
	.open = pg_open,
	.close = pg_close,
	.exec = pg_exec,
	.prepare = pg_prepare,
	.bind_i64 = pg_bind_i64,
	.bind_f64 = pg_bind_f64,
	.bind_blob = pg_bind_blob,
	.bind_text = pg_bind_text,
	.step = pg_step,
	.col_null = pg_col_null,
	.col_i64 = pg_col_i64,
	.col_f64 = pg_col_f64,
	.col_blob = pg_col_blob,
	.changes = pg_changes,
	.reset = pg_reset,
	.finalize = pg_finalize,
	.pipeline = pg_pipeline,
};

const struct hs_engine *const hs_postgres = &engine;
