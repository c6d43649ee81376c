/*
 * The queries of scoutfs-notify-heat: cold (coldest first), hot
 * (hottest first), stat (one file), report (totals per reader's uid,
 * node or directory), coverage and dump.  Each answer starts with its
 * coverage: which mounts the index observed, since when, how many of
 * their records were lost in the answer's window and when the last
 * complete scan was, so that a policy knows how far to trust "cold".
 * Output is text (key=value, paths escaped as notify-format.c escapes
 * them), JSON lines (notify-format.c's encoder: valid UTF-8, path_b64
 * for the exact bytes) or paths ended by NUL for xargs -0 (the coverage
 * then goes to stderr).  Queries never write: the database is opened
 * read-only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "heat.h"
#include "heat-apply.h"
#include "notify-format.h"
#include "notify-path.h"

#define SCOUTFS_SUPER_MAGIC	0x554f4353

enum fmt { F_TEXT, F_JSON, F_NUL };

/* which options a command takes */
#define O_WHEN		(1 << 0)
#define O_UNDER		(1 << 1)
#define O_LIMIT		(1 << 2)
#define O_RECHECK	(1 << 3)
#define O_BY		(1 << 4)
#define O_TOP		(1 << 5)
#define O_NUL		(1 << 6)

struct q {
	enum fmt fmt;
	bool has_fsid;
	uint64_t fsid;
	const char *under;
	size_t under_len;
	int64_t limit;
	int64_t when;		/* cold: not used since; hot: used since; -1 none */
	const char *recheck;
	const char *by;
	int depth;
	int64_t top;
	char **paths;		/* stat's */
	int npaths;
	int64_t now;
	struct hs *h;
	FILE *cov;		/* where the coverage goes */
	uint64_t gone;		/* --recheck: rows whose file is gone */
	uint64_t unchecked;	/* --recheck: rows of another filesystem */
	uint64_t nameless;	/* -0: rows without a path */
	int recheck_fd;
	struct np_cache *pc;
	uint64_t recheck_fsid;
};

struct frow {
	uint64_t fsid;
	uint64_t ino;
	const char *path;
	size_t path_len;
	int64_t v[15];		/* path_ns .. last_mount, as FILE_COLS */
	double heat;
	int64_t heat_ns;
	const char *node;
	size_t node_len;
	double heat_now;
};

enum { V_PATH_NS, V_FIRST, V_SEEN, V_OPEN, V_READ, V_MMAP, V_USE, V_OPENS, V_CALLS, V_BYTES,
       V_MMAPS, V_UID, V_MOUNT };

#define FILE_COLS \
	"f.fsid, f.ino, f.path, f.path_ns, f.first_ns, f.seen_ns, f.last_open_ns, f.last_read_ns," \
	" f.last_mmap_ns, f.last_use_ns, f.opens, f.read_calls, f.read_bytes, f.mmaps, f.last_uid," \
	" f.last_mount, f.heat, f.heat_ns, m.node"
#define FILE_FROM " FROM files f LEFT JOIN mounts m ON m.id = f.last_mount"

static void row_of(struct hs_stmt *st, struct frow *r, const struct q *q)
{
	int i;

	r->fsid = (uint64_t)hs_ci(st, 0);
	r->ino = (uint64_t)hs_ci(st, 1);
	r->path = hs_cb(st, 2, &r->path_len);
	for (i = 0; i <= V_MOUNT; i++)
		r->v[i] = hs_ci(st, 3 + i);
	r->heat = hs_cf(st, 16);
	r->heat_ns = hs_ci(st, 17);
	r->node = hs_cb(st, 18, &r->node_len);
	r->heat_now = r->heat * ha_decay(q->h->heat_period_s, q->h->heat_loss, q->now - r->heat_ns);
}

/* ---- output */

static void text_time(FILE *f, const char *key, int64_t ns)
{
	char t[NF_TIME_LEN];

	if (!ns) {
		fprintf(f, " %s=never", key);
		return;
	}
	nf_time((uint64_t)ns, t, sizeof(t));
	fprintf(f, " %s=%s", key, t);
}

static void json_time(FILE *f, const char *key, int64_t ns)
{
	char t[NF_TIME_LEN];

	if (!ns) {
		fprintf(f, ", \"%s\": null, \"%s_ns\": null", key, key);
		return;
	}
	nf_time((uint64_t)ns, t, sizeof(t));
	fprintf(f, ", \"%s\": \"%s\", \"%s_ns\": %" PRId64, key, t, key, ns);
}

static void print_text(FILE *f, const struct frow *r, bool rechecked)
{
	fprintf(f, "fsid=%" PRIx64 " ino=%" PRIu64, r->fsid, r->ino);
	text_time(f, "last_use", r->v[V_USE]);
	text_time(f, "last_read", r->v[V_READ]);
	text_time(f, "last_mmap", r->v[V_MMAP]);
	text_time(f, "last_open", r->v[V_OPEN]);
	fprintf(f, " read_calls=%" PRId64 " read_bytes=%" PRId64 " opens=%" PRId64 " mmaps=%" PRId64
		" heat=%.6g", r->v[V_CALLS], r->v[V_BYTES], r->v[V_OPENS], r->v[V_MMAPS], r->heat_now);
	if (r->v[V_UID] >= 0 && r->node) {
		fprintf(f, " reader=%" PRId64 "@", r->v[V_UID]);
		nf_text_str(f, r->node, r->node_len);
	} else {
		fputs(" reader=none", f);
	}
	if (rechecked)
		fputs(" checked=now", f);
	else
		text_time(f, "checked", r->v[V_SEEN]);
	if (r->path) {
		fputs(" path=", f);
		nf_text_str(f, r->path, r->path_len);
	}
	putc('\n', f);
}

static void print_json(FILE *f, const struct frow *r, bool rechecked)
{
	fprintf(f, "{\"fsid\": \"%" PRIx64 "\", \"ino\": %" PRIu64, r->fsid, r->ino);
	json_time(f, "last_use", r->v[V_USE]);
	json_time(f, "last_read", r->v[V_READ]);
	json_time(f, "last_mmap", r->v[V_MMAP]);
	json_time(f, "last_open", r->v[V_OPEN]);
	fprintf(f, ", \"read_calls\": %" PRId64 ", \"read_bytes\": %" PRId64 ", \"opens\": %" PRId64
		", \"mmaps\": %" PRId64 ", \"heat\": %.17g", r->v[V_CALLS], r->v[V_BYTES],
		r->v[V_OPENS], r->v[V_MMAPS], r->heat_now);
	if (r->v[V_UID] >= 0 && r->node) {
		fprintf(f, ", \"last_uid\": %" PRId64 ", ", r->v[V_UID]);
		nf_json_member(f, "last_node", r->node, r->node_len);
	} else {
		fputs(", \"last_uid\": null, \"last_node\": null", f);
	}
	if (rechecked)
		fputs(", \"checked\": \"now\"", f);
	else
		json_time(f, "checked", r->v[V_SEEN]);
	json_time(f, "first_seen", r->v[V_FIRST]);
	if (r->path) {
		fputs(", ", f);
		nf_json_member(f, "path", r->path, r->path_len);
	} else {
		fputs(", \"path\": null", f);
	}
	fputs("}\n", f);
}

static void print_row(struct q *q, const struct frow *r, bool rechecked)
{
	if (q->fmt == F_JSON) {
		print_json(stdout, r, rechecked);
	} else if (q->fmt == F_TEXT) {
		print_text(stdout, r, rechecked);
	} else if (r->path) {
		fwrite(r->path, 1, r->path_len, stdout);
		putchar(0);
	} else {
		q->nameless++;
	}
}

/* ---- coverage */

struct cmount {
	int64_t id;
	uint64_t fsid;
	char node[HA_NODE_MAX + 1];
	char rid[17];
	int64_t records;
	int64_t lost;
	int64_t unknown;
	int64_t last_ns;
	int64_t since;		/* the start of its first period */
	bool attached;		/* its first period began with an ATTACH */
	int64_t periods;	/* periods overlapping the window */
	int64_t gaps_win;
	int64_t lost_win;
	int64_t unobserved;	/* ns of the window between its periods */
};

struct cfs {
	uint64_t fsid;
	int64_t since;
	int64_t last_scan;
};

struct cov {
	int64_t from;
	int64_t to;
	struct cmount *m;
	size_t nm;
	struct cfs *fs;
	size_t nfs;
};

static struct cmount *cmount_of(struct cov *c, int64_t id)
{
	size_t i;

	for (i = 0; i < c->nm; i++)
		if (c->m[i].id == id)
			return &c->m[i];
	return NULL;
}

static struct cfs *cfs_of(struct cov *c, uint64_t fsid)
{
	struct cfs *n;
	size_t i;

	for (i = 0; i < c->nfs; i++)
		if (c->fs[i].fsid == fsid)
			return &c->fs[i];
	n = realloc(c->fs, (c->nfs + 1) * sizeof(*n));
	if (!n)
		return NULL;
	c->fs = n;
	c->fs[c->nfs] = (struct cfs){ fsid, 0, 0 };
	return &c->fs[c->nfs++];
}

static int cov_mounts(struct q *q, struct cov *c)
{
	struct hs_stmt *st;
	struct cmount *n;
	const void *p;
	size_t len;
	int r;

	if (hs_prepare(q->h, &st, "SELECT id, fsid, node, rid, records, lost, unknown, last_ns"
				  " FROM mounts ORDER BY fsid, node, id"))
		return HS_ERR;
	while ((r = hs_step(st)) == HS_ROW) {
		if (q->has_fsid && (uint64_t)hs_ci(st, 1) != q->fsid)
			continue;
		n = realloc(c->m, (c->nm + 1) * sizeof(*n));
		if (!n)
			break;
		c->m = n;
		n = &c->m[c->nm++];
		memset(n, 0, sizeof(*n));
		n->id = hs_ci(st, 0);
		n->fsid = (uint64_t)hs_ci(st, 1);
		p = hs_cb(st, 2, &len);
		snprintf(n->node, sizeof(n->node), "%.*s", p ? (int)len : 0, p ? (const char *)p : "");
		p = hs_cb(st, 3, &len);
		snprintf(n->rid, sizeof(n->rid), "%.*s", p ? (int)len : 0, p ? (const char *)p : "");
		n->records = hs_ci(st, 4);
		n->lost = hs_ci(st, 5);
		n->unknown = hs_ci(st, 6);
		n->last_ns = hs_ci(st, 7);
	}
	hs_finalize(st);
	return r == HS_ERR ? HS_ERR : 0;
}

static int64_t overlap(int64_t a, int64_t b, int64_t from, int64_t to)
{
	int64_t lo = a > from ? a : from;
	int64_t hi = b < to ? b : to;

	return hi > lo ? hi - lo : 0;
}

/* each mount's periods: since when, how many in the window, time between them */
static int cov_periods(struct q *q, struct cov *c)
{
	struct hs_stmt *st;
	struct cmount *m;
	int64_t prev_end = 0;
	int64_t prev_id = -1;
	int64_t s, e;
	int r;

	if (hs_prepare(q->h, &st, "SELECT mount_id, start_ns, end_ns, attached FROM periods"
				  " ORDER BY mount_id, start_seq"))
		return HS_ERR;
	while ((r = hs_step(st)) == HS_ROW) {
		m = cmount_of(c, hs_ci(st, 0));
		if (!m)
			continue;
		s = hs_ci(st, 1);
		e = hs_ci(st, 2);
		if (m->id != prev_id) {
			m->since = s;
			m->attached = hs_ci(st, 3) != 0;
			if (c->from)
				m->unobserved += overlap(c->from, s, c->from, c->to);
		} else {
			m->unobserved += overlap(prev_end, s, c->from, c->to);
		}
		if (e >= c->from && s <= c->to)
			m->periods++;
		prev_id = m->id;
		prev_end = e;
	}
	hs_finalize(st);
	return r == HS_ERR ? HS_ERR : 0;
}

static int cov_gaps(struct q *q, struct cov *c)
{
	struct hs_stmt *st;
	struct cmount *m;
	int r;

	if (hs_prepare(q->h, &st, "SELECT mount_id, COUNT(*), SUM(lost) FROM gaps"
				  " WHERE (to_ns = 0 OR to_ns >= $1) AND from_ns <= $2 GROUP BY mount_id"))
		return HS_ERR;
	hs_bi(st, 1, c->from);
	hs_bi(st, 2, c->to);
	while ((r = hs_step(st)) == HS_ROW) {
		m = cmount_of(c, hs_ci(st, 0));
		if (m) {
			m->gaps_win = hs_ci(st, 1);
			m->lost_win = hs_ci(st, 2);
		}
	}
	hs_finalize(st);
	return r == HS_ERR ? HS_ERR : 0;
}

static int cov_scans(struct q *q, struct cov *c)
{
	struct hs_stmt *st;
	struct cfs *f;
	size_t i;
	int r;

	for (i = 0; i < c->nm; i++) {
		f = cfs_of(c, c->m[i].fsid);
		if (f && c->m[i].since && (!f->since || c->m[i].since < f->since))
			f->since = c->m[i].since;
	}
	if (hs_prepare(q->h, &st, "SELECT fsid, MAX(start_ns) FROM scans WHERE complete = 1"
				  " GROUP BY fsid"))
		return HS_ERR;
	while ((r = hs_step(st)) == HS_ROW) {
		if (q->has_fsid && (uint64_t)hs_ci(st, 0) != q->fsid)
			continue;
		f = cfs_of(c, (uint64_t)hs_ci(st, 0));
		if (f)
			f->last_scan = hs_ci(st, 1);
	}
	hs_finalize(st);
	return r == HS_ERR ? HS_ERR : 0;
}

static void tm(int64_t ns, char *buf, size_t size)
{
	if (ns)
		nf_time((uint64_t)ns, buf, size);
	else
		snprintf(buf, size, "never");
}

static void cov_text(FILE *f, const struct cov *c, const struct q *q)
{
	char a[NF_TIME_LEN], b[NF_TIME_LEN];
	int64_t lost = 0;
	size_t i;

	for (i = 0; i < c->nm; i++)
		lost += c->m[i].lost_win;
	if (c->from)
		tm(c->from, a, sizeof(a));
	else
		snprintf(a, sizeof(a), "the start");
	tm(c->to, b, sizeof(b));
	fprintf(f, "# coverage from %s to %s: %zu mounts known, %" PRId64 " records lost in the window\n",
		a, b, c->nm, lost);
	for (i = 0; i < c->nm; i++) {
		const struct cmount *m = &c->m[i];

		tm(m->since, a, sizeof(a));
		tm(m->last_ns, b, sizeof(b));
		fprintf(f, "# mount fsid=%" PRIx64 " node=%s rid=%s: observed since %s (%s), last record %s;"
			" in the window %" PRId64 " periods, %" PRId64 " records lost in %" PRId64
			" gaps, %.0fs not observed\n", m->fsid, m->node, m->rid, a,
			m->attached ? "its ATTACH" : "its first record: the ATTACH was not seen", b,
			m->periods, m->lost_win, m->gaps_win, (double)m->unobserved / 1e9);
	}
	for (i = 0; i < c->nfs; i++) {
		tm(c->fs[i].since, a, sizeof(a));
		tm(c->fs[i].last_scan, b, sizeof(b));
		fprintf(f, "# fsid=%" PRIx64 ": observed since %s; last complete scan %s%s\n",
			c->fs[i].fsid, a, b,
			!c->fs[i].last_scan ? " (files nobody read are missing until a scan adds them)" :
			q->recheck ? " (each file listed was checked now)" :
			" (files deleted since are not rechecked: --recheck MOUNT checks them)");
	}
	if (!c->nm)
		fputs("# no mount has been observed: nothing is known\n", f);
}

static void cov_json(FILE *f, const struct cov *c, const struct q *q)
{
	int64_t lost = 0;
	size_t i;

	for (i = 0; i < c->nm; i++)
		lost += c->m[i].lost_win;
	fprintf(f, "{\"coverage\": {\"from_start\": %s", c->from ? "false" : "true");
	json_time(f, "from", c->from);
	json_time(f, "to", c->to);
	fprintf(f, ", \"lost\": %" PRId64 ", \"rechecked\": %s, \"mounts\": [", lost,
		q->recheck ? "true" : "false");
	for (i = 0; i < c->nm; i++) {
		const struct cmount *m = &c->m[i];

		fprintf(f, "%s{\"fsid\": \"%" PRIx64 "\", \"node\": \"%s\", \"rid\": \"%s\"", i ? ", " : "",
			m->fsid, m->node, m->rid);
		json_time(f, "since", m->since);
		json_time(f, "last_record", m->last_ns);
		fprintf(f, ", \"attached\": %s, \"records\": %" PRId64 ", \"lost_total\": %" PRId64
			", \"unknown_ops\": %" PRId64 ", \"periods\": %" PRId64 ", \"gaps\": %" PRId64
			", \"lost\": %" PRId64 ", \"unobserved_ns\": %" PRId64 "}",
			m->attached ? "true" : "false", m->records, m->lost, m->unknown, m->periods,
			m->gaps_win, m->lost_win, m->unobserved);
	}
	fputs("], \"filesystems\": [", f);
	for (i = 0; i < c->nfs; i++) {
		fprintf(f, "%s{\"fsid\": \"%" PRIx64 "\"", i ? ", " : "", c->fs[i].fsid);
		json_time(f, "since", c->fs[i].since);
		json_time(f, "last_scan", c->fs[i].last_scan);
		fputs("}", f);
	}
	fputs("]}}\n", f);
}

/* gather and print the coverage of [from, to]: 0, or an exit status */
static int coverage(struct q *q, int64_t from)
{
	struct cov c = { .from = from, .to = q->now };
	int ret = 0;

	if (cov_mounts(q, &c) || cov_periods(q, &c) || cov_gaps(q, &c) || cov_scans(q, &c))
		ret = heat_store_error(q->h, "coverage");
	else if (q->fmt == F_JSON)
		cov_json(q->cov, &c, q);
	else
		cov_text(q->cov, &c, q);
	free(c.m);
	free(c.fs);
	return ret;
}

/* ---- options */

static int qusage(const char *cmd, int opts, FILE *f)
{
	fprintf(f, "usage: " PROG " [--db DB] %s%s%s%s%s%s%s%s [--fsid FSID] [--json%s]\n", cmd,
		!strcmp(cmd, "stat") ? " PATH..." : "",
		!strcmp(cmd, "cold") ? " [--not-read-since WHEN]" : "",
		(opts & O_WHEN) && strcmp(cmd, "cold") ? " [--since WHEN]" : "",
		opts & O_UNDER ? " [--under DIR]" : "", opts & O_LIMIT ? " [--limit N]" : "",
		opts & O_TOP ? " [--top N]" : "", opts & O_BY ? " --by uid|node|dir [--depth N]" : "",
		opts & O_NUL ? " | -0" : "");
	if (opts & O_RECHECK)
		fputs("       [--recheck MOUNT]  check each file listed still exists (through MOUNT)\n", f);
	fputs("WHEN: RFC 3339 (2026-11-26T08:00:00Z) or a duration ago (30d, 1h).\n"
	      "See scoutfs-notify-heat(8).\n", f);
	return f == stdout ? -1 : EXIT_USAGE;
}

static int qerr(const char *cmd, const char *what, const char *arg)
{
	fprintf(stderr, PROG ": %s: %s, not '%s'\n", cmd, what, arg ? arg : "(nothing)");
	return EXIT_USAGE;
}

static int take_value(struct q *q, const char *cmd, int opts, const char *o, const char *v)
{
	int64_t n;

	if ((opts & O_WHEN) && (!strcmp(o, "--not-read-since") || !strcmp(o, "--since"))) {
		q->when = heat_when(v);
		return q->when < 0 ? qerr(cmd, "WHEN is RFC 3339 or a duration (30d)", v) : 0;
	}
	if ((opts & O_UNDER) && !strcmp(o, "--under")) {
		if (v[0] != '/')
			return qerr(cmd, "--under needs an absolute directory", v);
		q->under = v;
		q->under_len = strlen(v);
		while (q->under_len > 1 && v[q->under_len - 1] == '/')
			q->under_len--;
		return 0;
	}
	if (((opts & O_LIMIT) && !strcmp(o, "--limit")) || ((opts & O_TOP) && !strcmp(o, "--top"))) {
		n = heat_count(v);
		if (n < 0)
			return qerr(cmd, "a positive number", v);
		if (!strcmp(o, "--top"))
			q->top = n;
		else
			q->limit = n;
		return 0;
	}
	if ((opts & O_RECHECK) && !strcmp(o, "--recheck")) {
		q->recheck = v;
		return 0;
	}
	if ((opts & O_BY) && !strcmp(o, "--by")) {
		if (strcmp(v, "uid") && strcmp(v, "node") && strcmp(v, "dir"))
			return qerr(cmd, "--by takes uid, node or dir", v);
		q->by = v;
		return 0;
	}
	if ((opts & O_BY) && !strcmp(o, "--depth")) {
		n = heat_count(v);
		if (n < 0 || n > 4096)
			return qerr(cmd, "--depth needs a positive number", v);
		q->depth = (int)n;
		return 0;
	}
	if (!strcmp(o, "--fsid")) {
		char *end;

		errno = 0;
		q->fsid = strtoull(v, &end, 16);
		if (errno || *end || !*v || strlen(v) > 16)
			return qerr(cmd, "--fsid is the fsid in hex, as stat -f -c %i prints it", v);
		q->has_fsid = true;
		return 0;
	}
	return 1;
}

static int qopts(struct q *q, const char *cmd, int opts, int argc, char **argv)
{
	int ret;
	int i;

	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "-h") || !strcmp(o, "--help"))
			return qusage(cmd, opts, stdout);
		if (!strcmp(o, "--json") || !strcmp(o, "-j")) {
			q->fmt = F_JSON;
		} else if ((opts & O_NUL) && (!strcmp(o, "-0") || !strcmp(o, "--null"))) {
			q->fmt = F_NUL;
		} else if (o[0] == '-' && i + 1 < argc &&
			   (ret = take_value(q, cmd, opts, o, argv[i + 1])) <= 0) {
			if (ret)
				return ret;
			i++;
		} else if (o[0] != '-' && !strcmp(cmd, "stat")) {
			q->paths = &argv[i];
			for (q->npaths = 0; i + q->npaths < argc && argv[i + q->npaths][0] != '-'; )
				q->npaths++;
			i += q->npaths - 1;
		} else {
			fprintf(stderr, PROG ": %s: unknown or incomplete option '%s'\n", cmd, o);
			return qusage(cmd, opts, stderr);
		}
	}
	if ((opts & O_BY) && !q->by)
		return qerr(cmd, "--by is required", NULL);
	if (!strcmp(cmd, "stat") && !q->npaths)
		return qusage(cmd, opts, stderr);
	return 0;
}

/* open the database read-only and set what every query needs */
static int qsetup(struct q *q, const char *cmd, int opts, int argc, char **argv)
{
	int status = 0;

	q->when = -1;
	q->recheck_fd = -1;
	q->cov = stdout;
	status = qopts(q, cmd, opts, argc, argv);
	if (status)
		return status;
	if (q->fmt == F_NUL)
		q->cov = stderr;
	q->h = heat_open(true, 0, 0, &status);
	q->now = heat_now();
	return q->h ? 0 : status;
}

static void qdone(struct q *q)
{
	np_cache_free(q->pc);
	if (q->recheck_fd >= 0)
		close(q->recheck_fd);
	hs_close(q->h);
}

/* ---- SQL conditions */

struct where {
	char sql[1024];
	int n;			/* parameters so far */
	int64_t i[8];
	int ni;
	const char *under_lo;	/* DIR + "/" and DIR + "0": the paths under DIR */
	size_t lo_len;
	char *buf;
	int lo_param;
};

static void add_sql(struct where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_sql(struct where *w, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(w->sql);

	va_start(ap, fmt);
	vsnprintf(w->sql + n, sizeof(w->sql) - n, fmt, ap);
	va_end(ap);
}

/* the engine's index key of expr (PostgreSQL indexes a prefix of path) */
static void key_of(struct hs *h, const char *expr, char *buf, size_t size)
{
	const char *k = h->e->path_key;
	const char *p = strstr(k, "path");

	snprintf(buf, size, "%.*s%s%s", (int)(p - k), k, expr, p + 4);
}

/* WHERE conditions for --fsid and --under (int conditions added by the caller first) */
static int where_common(struct q *q, struct where *w)
{
	char a[160], b[160], c[160], d[32];

	if (q->has_fsid) {
		add_sql(w, " AND f.fsid = $%d", ++w->n);
		w->i[w->ni++] = (int64_t)q->fsid;
	}
	if (!q->under)
		return 0;
	w->buf = malloc(q->under_len + 2);
	if (!w->buf)
		return -1;
	memcpy(w->buf, q->under, q->under_len);
	w->lo_len = q->under_len;
	if (!(q->under_len == 1 && q->under[0] == '/'))
		w->buf[w->lo_len++] = '/';
	w->lo_param = w->n + 1;
	add_sql(w, " AND f.path >= $%d AND f.path < $%d", w->n + 1, w->n + 2);
	if (strcmp(q->h->e->path_key, "path")) {
		snprintf(d, sizeof(d), "$%d", w->n + 1);
		key_of(q->h, "f.path", a, sizeof(a));
		key_of(q->h, d, b, sizeof(b));
		snprintf(d, sizeof(d), "$%d", w->n + 2);
		key_of(q->h, d, c, sizeof(c));
		add_sql(w, " AND %s >= %s AND %s <= %s", a, b, a, c);
	}
	w->n += 2;
	return 0;
}

static void bind_where(struct hs_stmt *st, struct where *w)
{
	int k;

	for (k = 0; k < w->ni; k++)
		hs_bi(st, k + 1, w->i[k]);
	if (w->buf) {
		hs_bb(st, w->lo_param, w->buf, w->lo_len);
		w->buf[w->lo_len - 1]++;	/* '/' + 1 == '0': the end of the range */
		hs_bb(st, w->lo_param + 1, w->buf, w->lo_len);
		w->buf[w->lo_len - 1]--;
	}
}

/* ---- --recheck: does the file still exist, and where */

static bool fsid_of_path(const char *p, uint64_t *fsid)
{
	struct statfs sfs;
	uint32_t w[2];

	if (statfs(p, &sfs) || (uint32_t)sfs.f_type != SCOUTFS_SUPER_MAGIC)
		return false;
	memcpy(w, &sfs.f_fsid, sizeof(w));
	*fsid = ((uint64_t)w[0] << 32) | w[1];
	return true;
}

static bool is_it(const char *p, size_t len, const struct frow *r)
{
	struct stat st;
	uint64_t fsid;
	char *z = strndup(p, len);
	bool ok;

	ok = z && strlen(z) == len && !lstat(z, &st) && S_ISREG(st.st_mode) &&
	     (uint64_t)st.st_ino == r->ino && fsid_of_path(z, &fsid) && fsid == r->fsid;
	free(z);
	return ok;
}

static int recheck_setup(struct q *q)
{
	char fsid[NP_FSID_LEN];
	char rid[NP_RID_LEN];

	q->recheck_fd = open(q->recheck, O_RDONLY | O_DIRECTORY | O_NOATIME | O_CLOEXEC);
	if (q->recheck_fd < 0 || np_mount_ids(q->recheck_fd, fsid, rid)) {
		fprintf(stderr, PROG ": --recheck %s: not a scoutfs mount (%s)\n", q->recheck,
			strerror(errno));
		return EXIT_USAGE;
	}
	q->recheck_fsid = strtoull(fsid, NULL, 16);
	q->pc = np_cache_new(q->recheck_fd, q->recheck);
	return q->pc ? 0 : EXIT_TRANSIENT;
}

/* false if the file is gone; r's path becomes where it is now */
static bool recheck(struct q *q, struct frow *r)
{
	const char *p;
	size_t len = 0;

	if (r->fsid != q->recheck_fsid) {
		q->unchecked++;
		return true;
	}
	if (r->path && is_it(r->path, r->path_len, r))
		return true;
	p = np_path(q->pc, r->ino, true, &len);
	if (p && is_it(p, len, r)) {
		r->path = p;
		r->path_len = len;
		return true;
	}
	q->gone++;
	return false;
}

static void recheck_summary(struct q *q)
{
	if (q->recheck)
		fprintf(q->cov, "%s%" PRIu64 " files listed in the index are gone (left out)%s%" PRIu64
			"%s\n", q->fmt == F_JSON ? "" : "# ", q->gone,
			q->unchecked ? "; not rechecked (another filesystem): " : "",
			q->unchecked, q->unchecked ? "" : "");
	if (q->nameless)
		fprintf(stderr, PROG ": %" PRIu64 " files without a known path left out of the -0 list\n",
			q->nameless);
}

/* ---- cold */

int cmd_cold(int argc, char **argv)
{
	struct where w = { .sql = "" };
	struct hs_stmt *st = NULL;
	struct frow r;
	struct q q = { 0 };
	char sql[1400];
	char lim[32] = "";
	int status;
	int rc;

	status = qsetup(&q, "cold", O_WHEN | O_UNDER | O_LIMIT | O_RECHECK | O_NUL, argc, argv);
	if (status || (q.recheck && (status = recheck_setup(&q))))
		goto out;
	add_sql(&w, " WHERE f.last_use_ns < $1");
	w.n = 1;
	w.i[w.ni++] = q.when >= 0 ? q.when : INT64_MAX;
	if (where_common(&q, &w))
		goto out;
	if (q.limit && !q.recheck)
		snprintf(lim, sizeof(lim), " LIMIT $%d", w.n + 1);
	snprintf(sql, sizeof(sql), "SELECT " FILE_COLS FILE_FROM "%s ORDER BY f.last_use_ns, f.fsid,"
		 " f.ino%s", w.sql, lim);
	status = coverage(&q, q.when >= 0 ? q.when : 0);
	if (status)
		goto out;
	if (hs_prepare(q.h, &st, sql)) {
		status = heat_store_error(q.h, "cold");
		goto out;
	}
	bind_where(st, &w);
	if (q.limit && !q.recheck)
		hs_bi(st, w.n + 1, q.limit);
	while ((rc = hs_step(st)) == HS_ROW) {
		row_of(st, &r, &q);
		if (q.recheck && !recheck(&q, &r))
			continue;
		print_row(&q, &r, q.recheck && r.fsid == q.recheck_fsid);
		if (q.recheck && q.limit && !--q.limit)
			break;
	}
	if (rc == HS_ERR)
		status = heat_store_error(q.h, "cold");
	recheck_summary(&q);
out:
	free(w.buf);
	hs_finalize(st);
	qdone(&q);
	return status < 0 ? 0 : status;
}

/* ---- hot: the top N by heat now, a heap of copies */

struct hot {
	struct frow *r;
	size_t n;
	size_t cap;
};

static bool hotter(const struct frow *a, const struct frow *b)
{
	if (a->heat_now != b->heat_now)
		return a->heat_now > b->heat_now;
	return a->fsid != b->fsid ? a->fsid < b->fsid : a->ino < b->ino;
}

static void sift_down(struct hot *h, size_t i)
{
	struct frow t;
	size_t c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= h->n)
			return;
		/* a min-heap by hotness: the coolest of the kept at the root */
		if (c + 1 < h->n && hotter(&h->r[c], &h->r[c + 1]))
			c++;
		if (!hotter(&h->r[i], &h->r[c]))
			return;
		t = h->r[i];
		h->r[i] = h->r[c];
		h->r[c] = t;
		i = c;
	}
}

static void free_copy(struct frow *r)
{
	free((void *)r->path);
	free((void *)r->node);
}

static int copy_row(struct frow *dst, const struct frow *src)
{
	*dst = *src;
	dst->path = src->path ? malloc(src->path_len + 1) : NULL;
	dst->node = src->node ? malloc(src->node_len + 1) : NULL;
	if ((src->path && !dst->path) || (src->node && !dst->node))
		return -1;
	if (src->path)
		memcpy((void *)dst->path, src->path, src->path_len);
	if (src->node)
		memcpy((void *)dst->node, src->node, src->node_len);
	return 0;
}

static int keep_hot(struct hot *h, const struct frow *r, size_t top)
{
	size_t i;

	if (h->n == top) {
		if (!hotter(r, &h->r[0]))
			return 0;
		free_copy(&h->r[0]);
		if (copy_row(&h->r[0], r))
			return -1;
		sift_down(h, 0);
		return 0;
	}
	if (h->n == h->cap) {
		struct frow *n = realloc(h->r, (h->cap ? h->cap * 2 : 64) * sizeof(*n));

		if (!n)
			return -1;
		h->r = n;
		h->cap = h->cap ? h->cap * 2 : 64;
	}
	if (copy_row(&h->r[h->n++], r))
		return -1;
	for (i = h->n; i-- > 0; )
		if (i < h->n / 2 + 1)
			sift_down(h, i);
	return 0;
}

static int cmp_hot(const void *a, const void *b)
{
	return hotter(a, b) ? -1 : hotter(b, a) ? 1 : 0;
}

int cmd_hot(int argc, char **argv)
{
	struct where w = { .sql = "" };
	struct hs_stmt *st = NULL;
	struct hot hot = { 0 };
	struct frow r;
	struct q q = { 0 };
	char sql[1400];
	size_t i;
	int status;
	int rc;

	status = qsetup(&q, "hot", O_WHEN | O_UNDER | O_TOP | O_NUL, argc, argv);
	if (status)
		goto out;
	if (!q.top)
		q.top = 20;
	if (q.when < 0)
		q.when = q.now - 3600LL * 1000000000LL;
	add_sql(&w, " WHERE f.last_use_ns >= $1");
	w.n = 1;
	w.i[w.ni++] = q.when;
	if (where_common(&q, &w))
		goto out;
	snprintf(sql, sizeof(sql), "SELECT " FILE_COLS FILE_FROM "%s", w.sql);
	status = coverage(&q, q.when);
	if (status)
		goto out;
	if (hs_prepare(q.h, &st, sql)) {
		status = heat_store_error(q.h, "hot");
		goto out;
	}
	bind_where(st, &w);
	while ((rc = hs_step(st)) == HS_ROW) {
		row_of(st, &r, &q);
		if (keep_hot(&hot, &r, (size_t)q.top)) {
			status = EXIT_TRANSIENT;
			break;
		}
	}
	if (rc == HS_ERR)
		status = heat_store_error(q.h, "hot");
	qsort(hot.r, hot.n, sizeof(*hot.r), cmp_hot);
	for (i = 0; i < hot.n; i++) {
		print_row(&q, &hot.r[i], false);
		free_copy(&hot.r[i]);
	}
	recheck_summary(&q);
out:
	free(hot.r);
	free(w.buf);
	hs_finalize(st);
	qdone(&q);
	return status < 0 ? 0 : status;
}

/* ---- stat */

static int stat_rows(struct q *q, struct hs_stmt *st, bool *found)
{
	struct frow r;
	int rc;

	while ((rc = hs_step(st)) == HS_ROW) {
		row_of(st, &r, q);
		print_row(q, &r, false);
		*found = true;
	}
	hs_reset(st);
	return rc;
}

static int stat_one(struct q *q, struct hs_stmt *by_ino, struct hs_stmt *by_path, const char *p)
{
	struct stat st;
	uint64_t fsid;
	bool found = false;
	int rc;

	if (!lstat(p, &st) && S_ISREG(st.st_mode) && fsid_of_path(p, &fsid)) {
		hs_bi(by_ino, 1, (int64_t)fsid);
		hs_bi(by_ino, 2, (int64_t)st.st_ino);
		rc = stat_rows(q, by_ino, &found);
	} else {
		hs_bb(by_path, 1, p, strlen(p));
		rc = stat_rows(q, by_path, &found);
	}
	if (rc == HS_ERR)
		return heat_store_error(q->h, "stat");
	if (!found) {
		fprintf(stderr, PROG ": stat: %s: not in the index\n", p);
		return EXIT_TRANSIENT;
	}
	return 0;
}

int cmd_stat(int argc, char **argv)
{
	struct hs_stmt *by_ino = NULL;
	struct hs_stmt *by_path = NULL;
	struct q q = { 0 };
	char key[160], key2[160], sql[1400];
	int status;
	int ret;
	int i;

	status = qsetup(&q, "stat", 0, argc, argv);
	if (status)
		goto out;
	if (strcmp(q.h->e->path_key, "path")) {
		key_of(q.h, "f.path", key, sizeof(key));
		key_of(q.h, "$1", key2, sizeof(key2));
		snprintf(sql, sizeof(sql), "SELECT " FILE_COLS FILE_FROM " WHERE f.path = $1 AND %s = %s"
			 " ORDER BY f.fsid, f.ino", key, key2);
	} else {
		snprintf(sql, sizeof(sql), "SELECT " FILE_COLS FILE_FROM " WHERE f.path = $1"
			 " ORDER BY f.fsid, f.ino");
	}
	if (hs_prepare(q.h, &by_ino, "SELECT " FILE_COLS FILE_FROM " WHERE f.fsid = $1 AND f.ino = $2") ||
	    hs_prepare(q.h, &by_path, sql)) {
		status = heat_store_error(q.h, "stat");
		goto out;
	}
	status = coverage(&q, 0);
	for (i = 0; !status && i < q.npaths; i++) {
		ret = stat_one(&q, by_ino, by_path, q.paths[i]);
		if (ret && !status)
			status = ret;
	}
out:
	hs_finalize(by_ino);
	hs_finalize(by_path);
	qdone(&q);
	return status < 0 ? 0 : status;
}

/* ---- report */

struct group {
	char *key;
	size_t len;
	int64_t files;
	int64_t never;
	int64_t cold;
	int64_t calls;
	int64_t bytes;
	int64_t last_use;
};

struct groups {
	struct group *g;
	size_t n;
	size_t cap;		/* a power of two, open addressing */
};

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	while (n--)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static struct group *group_of(struct groups *gs, const char *k, size_t len)
{
	size_t i;

	if ((gs->n + 1) * 2 > gs->cap) {
		struct groups n = { calloc(gs->cap ? gs->cap * 2 : 256, sizeof(struct group)), 0,
				    gs->cap ? gs->cap * 2 : 256 };

		if (!n.g)
			return NULL;
		for (i = 0; i < gs->cap; i++) {
			if (gs->g[i].key) {
				size_t j = hash(gs->g[i].key, gs->g[i].len) & (n.cap - 1);

				while (n.g[j].key)
					j = (j + 1) & (n.cap - 1);
				n.g[j] = gs->g[i];
				n.n++;
			}
		}
		free(gs->g);
		*gs = n;
	}
	i = hash(k, len) & (gs->cap - 1);
	while (gs->g[i].key && (gs->g[i].len != len || memcmp(gs->g[i].key, k, len)))
		i = (i + 1) & (gs->cap - 1);
	if (!gs->g[i].key) {
		gs->g[i].key = malloc(len + 1);
		if (!gs->g[i].key)
			return NULL;
		memcpy(gs->g[i].key, k, len);
		gs->g[i].key[len] = 0;
		gs->g[i].len = len;
		gs->n++;
	}
	return &gs->g[i];
}

/* the group key of a row: its reader's uid or node, or its directory */
static const char *key_for(const struct q *q, const struct frow *r, char *buf, size_t size,
			   size_t *len)
{
	size_t i;
	int depth = 0;

	if (!strcmp(q->by, "uid")) {
		*len = (size_t)(r->v[V_UID] >= 0 ? snprintf(buf, size, "%" PRId64, r->v[V_UID]) :
				snprintf(buf, size, "none"));
		return buf;
	}
	if (!strcmp(q->by, "node")) {
		if (!r->node || r->v[V_UID] < 0) {
			*len = 4;
			return "none";
		}
		*len = r->node_len;
		return r->node;
	}
	if (!r->path) {
		*len = 9;
		return "(no path)";
	}
	/* the first --depth components, or the parent directory */
	for (i = 1; q->depth && i < r->path_len; i++)
		if (r->path[i] == '/' && ++depth == q->depth)
			break;
	if (!q->depth || i >= r->path_len)
		for (i = r->path_len; i > 1 && r->path[i - 1] != '/'; i--)
			;
	*len = i > 1 ? i - (r->path[i - 1] == '/' && !q->depth ? 1 : 0) : 1;
	return r->path;
}

static void add_row(struct group *g, const struct q *q, const struct frow *r)
{
	g->files++;
	g->never += r->v[V_USE] == 0;
	g->cold += q->when >= 0 && r->v[V_USE] < q->when;
	g->calls += r->v[V_CALLS];
	g->bytes += r->v[V_BYTES];
	if (r->v[V_USE] > g->last_use)
		g->last_use = r->v[V_USE];
}

static int cmp_group(const void *a, const void *b)
{
	const struct group *x = a;
	const struct group *y = b;
	int c;

	if (!x->key || !y->key)
		return !x->key - !y->key;
	c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void print_group(const struct q *q, const struct group *g)
{
	if (q->fmt == F_JSON) {
		fprintf(stdout, "{\"by\": \"%s\", ", q->by);
		nf_json_member(stdout, "key", g->key, g->len);
	} else {
		fprintf(stdout, "%s=", q->by);
		nf_text_str(stdout, g->key, g->len);
	}
	fprintf(stdout, q->fmt == F_JSON ? ", \"files\": %" PRId64 ", \"never_used\": %" PRId64
		", \"cold\": %" PRId64 ", \"read_calls\": %" PRId64 ", \"read_bytes\": %" PRId64 :
		" files=%" PRId64 " never_used=%" PRId64 " cold=%" PRId64 " read_calls=%" PRId64
		" read_bytes=%" PRId64, g->files, g->never, g->cold, g->calls, g->bytes);
	if (q->fmt == F_JSON) {
		json_time(stdout, "last_use", g->last_use);
		fputs("}\n", stdout);
	} else {
		text_time(stdout, "last_use", g->last_use);
		putchar('\n');
	}
}

int cmd_report(int argc, char **argv)
{
	struct where w = { .sql = " WHERE 1 = 1" };
	struct groups gs = { 0 };
	struct hs_stmt *st = NULL;
	struct group *g;
	struct frow r;
	struct q q = { 0 };
	char sql[1400], kb[64];
	const char *k;
	size_t klen;
	size_t i;
	int status;
	int rc;

	status = qsetup(&q, "report", O_BY | O_UNDER | O_WHEN, argc, argv);
	if (status || where_common(&q, &w))
		goto out;
	snprintf(sql, sizeof(sql), "SELECT " FILE_COLS FILE_FROM "%s", w.sql);
	status = coverage(&q, q.when >= 0 ? q.when : 0);
	if (status)
		goto out;
	if (hs_prepare(q.h, &st, sql)) {
		status = heat_store_error(q.h, "report");
		goto out;
	}
	bind_where(st, &w);
	while ((rc = hs_step(st)) == HS_ROW) {
		row_of(st, &r, &q);
		k = key_for(&q, &r, kb, sizeof(kb), &klen);
		g = group_of(&gs, k, klen);
		if (!g) {
			status = EXIT_TRANSIENT;
			break;
		}
		add_row(g, &q, &r);
	}
	if (rc == HS_ERR)
		status = heat_store_error(q.h, "report");
	qsort(gs.g, gs.cap, sizeof(*gs.g), cmp_group);
	for (i = 0; i < gs.n; i++) {
		print_group(&q, &gs.g[i]);
		free(gs.g[i].key);
	}
out:
	free(gs.g);
	free(w.buf);
	hs_finalize(st);
	qdone(&q);
	return status < 0 ? 0 : status;
}

/* ---- coverage and dump */

int cmd_coverage(int argc, char **argv)
{
	struct q q = { 0 };
	int status;

	status = qsetup(&q, "coverage", O_WHEN, argc, argv);
	if (!status)
		status = coverage(&q, q.when >= 0 ? q.when : 0);
	qdone(&q);
	return status < 0 ? 0 : status;
}

/* every column of every row of a table, text, in the order given */
static int dump_table(struct hs *h, const char *table, const char *cols, const char *order,
		      const char *kinds)
{
	struct hs_stmt *st;
	char sql[512];
	const void *p;
	size_t len;
	int rc;
	int i;

	snprintf(sql, sizeof(sql), "SELECT %s FROM %s ORDER BY %s", cols, table, order);
	if (hs_prepare(h, &st, sql))
		return HS_ERR;
	while ((rc = hs_step(st)) == HS_ROW) {
		fputs(table, stdout);
		for (i = 0; kinds[i]; i++) {
			putchar(' ');
			if (hs_cnull(st, i)) {
				fputs("-", stdout);
			} else if (kinds[i] == 'i') {
				printf("%" PRId64, hs_ci(st, i));
			} else if (kinds[i] == 'f') {
				printf("%.17g", hs_cf(st, i));
			} else {
				p = hs_cb(st, i, &len);
				fputs("\"", stdout);
				nf_text_str(stdout, p, len);
				fputs("\"", stdout);
			}
		}
		putchar('\n');
	}
	hs_finalize(st);
	return rc == HS_ERR ? HS_ERR : 0;
}

int cmd_dump(int argc, char **argv)
{
	struct q q = { 0 };
	int status;

	status = qsetup(&q, "dump", 0, argc, argv);
	if (status)
		goto out;
	if (dump_table(q.h, "meta", "key, value", "key", "ss") ||
	    dump_table(q.h, "mounts", "id, fsid, node, rid, next_seq, records, lost, unknown,"
		       " first_ns, last_ns, attach_ns", "id", "iissiiiiiii") ||
	    dump_table(q.h, "periods", "mount_id, start_seq, start_ns, end_ns, attached",
		       "mount_id, start_seq", "iiiii") ||
	    dump_table(q.h, "gaps", "mount_id, first_seq, last_seq, lost, from_ns, to_ns",
		       "mount_id, first_seq", "iiiiii") ||
	    dump_table(q.h, "files", "fsid, ino, path, path_ns, first_ns, seen_ns, last_open_ns,"
		       " last_read_ns, last_mmap_ns, last_use_ns, opens, read_calls, read_bytes, mmaps,"
		       " last_uid, last_mount, heat, heat_ns", "fsid, ino", "iisiiiiiiiiiiiiifi") ||
	    dump_table(q.h, "scans", "fsid, start_ns, end_ns, root, seen, added, removed, complete",
		       "fsid, start_ns", "iiisiiii"))
		status = heat_store_error(q.h, "dump");
out:
	qdone(&q);
	return status < 0 ? 0 : status;
}
