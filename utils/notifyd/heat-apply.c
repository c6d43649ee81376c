/*
 * See heat-apply.h.  Memory holds every mount of the database (a few
 * per node and mount), the changes of the files touched since the last
 * flush (a hash table of deltas, one per file), and the gap and period
 * rows changed since then.  Every merge is order independent (sums,
 * latest times, ties broken by value), so that the same records give
 * the same index however they were batched into transactions; the heat
 * is a sum of decayed weights, equal up to floating point rounding.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heat-apply.h"
#include "notify-json.h"

#define MAPS_MAX	16
#define BATCH_MAX	4096	/* records in one batched message */

struct hgap {
	uint64_t first;
	uint64_t last;
	int64_t from_ns;
	int64_t to_ns;
	bool dead;		/* deleted (a late record at its first seq) */
};

struct hperiod {
	uint64_t start_seq;
	int64_t start_ns;
	int64_t end_ns;
	int attached;
};

struct hmount {
	int64_t id;
	uint64_t fsid;
	char node[HA_NODE_MAX + 1];
	char rid[17];
	uint64_t next_seq;
	uint64_t db_next_seq;	/* what the database holds: checked when written */
	int64_t records;
	int64_t lost;
	int64_t unknown;
	int64_t first_ns;
	int64_t last_ns;
	int64_t attach_ns;
	bool in_db;
	bool dirty;
	bool has_cur;
	bool cur_dirty;
	struct hperiod cur;	/* the period records go to now */
	struct hperiod *done;	/* periods ended since the last flush */
	size_t ndone;
	struct hgap *gaps;	/* gap rows changed since the last flush */
	size_t ngaps;
	bool open_gap;		/* a gap whose end time waits for the next record */
	struct hgap og;
};

/* a flush handed to the writer thread (ha_flush_async()) */
struct batch {
	struct fdelta *tab;	/* the files' deltas: a table of cap slots */
	size_t cap;
	size_t nfiles;
	struct hmount *mounts;	/* copies of the mounts with changes; done and gaps are ours */
	size_t nmounts;
	const char *pos_key;
	char pos_val[32];
	ha_done_fn *done;
	void *cookie;
	uint64_t rows;
};

/* the writer's statements, prepared once */
enum { W_MOUNT_INS, W_MOUNT_UPD, W_PERIOD, W_GAP_PUT, W_GAP_DEL, W_META, W_NR };

struct writer {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* a batch came, one was done, or stop */
	struct batch *b;	/* the batch being written, NULL when idle */
	bool running;
	bool stop;
	bool failed;		/* a batch failed: everything after is refused */
	uint64_t flushes;
	uint64_t rows;
	struct hs_stmt *st[W_NR];
	struct ha_upsert up;
};

struct pmap {
	char *from;
	size_t flen;
	char *to;
	size_t tlen;
};

struct ha {
	struct hs *store;
	double period_s;
	double loss;
	struct hmount **mounts;
	size_t nmounts;
	int64_t next_id;
	struct fdelta *tab;
	size_t cap;		/* a power of two */
	size_t nfiles;
	struct pmap maps[MAPS_MAX];
	int nmaps;
	struct hs_stmt *find_gap;
	char *mapped;		/* the last mapped path */
	struct ha_counts c;
	struct writer w;
};

double ha_decay(double period_s, double loss, int64_t dt_ns)
{
	if (dt_ns <= 0)
		return 1.0;
	return pow(1.0 - loss, (double)dt_ns / (period_s * 1e9));
}

bool ha_token_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > HA_NODE_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

struct ha *ha_new(struct hs *store, double period_s, double loss)
{
	struct ha *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->store = store;
	a->period_s = store ? store->heat_period_s : period_s;
	a->loss = store ? store->heat_loss : loss;
	a->next_id = 1;
	a->cap = 1024;
	pthread_mutex_init(&a->w.mu, NULL);
	pthread_cond_init(&a->w.cv, NULL);
	a->tab = calloc(a->cap, sizeof(*a->tab));
	if (!a->tab) {
		free(a);
		return NULL;
	}
	return a;
}

int ha_rebind(struct ha *a, struct hs *store)
{
	a->store = store;
	a->period_s = store->heat_period_s;
	a->loss = store->heat_loss;
	return 0;
}

static void free_mount(struct hmount *m)
{
	free(m->done);
	free(m->gaps);
	free(m);
}

static void writer_stop(struct ha *a);

static void clear_files(struct ha *a)
{
	size_t i;

	for (i = 0; i < a->cap; i++)
		free(a->tab[i].path);
	memset(a->tab, 0, a->cap * sizeof(*a->tab));
	a->nfiles = 0;
}

void ha_free(struct ha *a)
{
	size_t i;
	int k;

	if (!a)
		return;
	ha_wait(a);
	writer_stop(a);
	pthread_cond_destroy(&a->w.cv);
	pthread_mutex_destroy(&a->w.mu);
	clear_files(a);
	free(a->tab);
	for (i = 0; i < a->nmounts; i++)
		free_mount(a->mounts[i]);
	free(a->mounts);
	for (k = 0; k < a->nmaps; k++) {
		free(a->maps[k].from);
		free(a->maps[k].to);
	}
	hs_finalize(a->find_gap);
	free(a->mapped);
	free(a);
}

const struct ha_counts *ha_counts(struct ha *a)
{
	pthread_mutex_lock(&a->w.mu);
	a->c.flushes = a->w.flushes;
	a->c.rows = a->w.rows;
	pthread_mutex_unlock(&a->w.mu);
	return &a->c;
}

size_t ha_pending_files(const struct ha *a)
{
	return a->nfiles;
}

bool ha_pending(const struct ha *a)
{
	size_t i;

	if (a->nfiles)
		return true;
	for (i = 0; i < a->nmounts; i++)
		if (a->mounts[i]->dirty)
			return true;
	return false;
}

/* strip trailing slashes, "/" itself aside */
static size_t trim_slashes(const char *s, size_t n)
{
	while (n > 1 && s[n - 1] == '/')
		n--;
	return n;
}

int ha_map_add(struct ha *a, const char *spec)
{
	const char *eq = strchr(spec, '=');
	struct pmap *m;

	if (!eq || eq == spec || spec[0] != '/' || eq[1] != '/' || a->nmaps == MAPS_MAX)
		return -1;
	m = &a->maps[a->nmaps];
	m->flen = trim_slashes(spec, (size_t)(eq - spec));
	m->from = strndup(spec, m->flen);
	m->tlen = trim_slashes(eq + 1, strlen(eq + 1));
	m->to = strndup(eq + 1, m->tlen);
	if (!m->from || !m->to)
		return -1;
	a->nmaps++;
	return 0;
}

/* path after --path-map: the longest FROM that is a whole prefix of it */
static const char *map_path(struct ha *a, const char *p, size_t len, size_t *out_len)
{
	const struct pmap *best = NULL;
	char *n;
	int k;

	for (k = 0; k < a->nmaps; k++) {
		const struct pmap *m = &a->maps[k];

		if (len >= m->flen && !memcmp(p, m->from, m->flen) &&
		    (len == m->flen || p[m->flen] == '/' || m->flen == 1) &&
		    (!best || m->flen > best->flen))
			best = m;
	}
	*out_len = len;
	if (!best)
		return p;
	n = malloc(best->tlen + len - best->flen + 2);
	if (!n)
		return NULL;
	memcpy(n, best->to, best->tlen);
	*out_len = best->tlen;
	if (best->flen == 1 && len > 1 && best->tlen > 1)
		n[(*out_len)++] = '/';
	memcpy(n + *out_len, p + best->flen, len - best->flen);
	*out_len += len - best->flen;
	free(a->mapped);
	a->mapped = n;
	return n;
}

const char *ha_map(struct ha *a, const char *p, size_t len, size_t *out_len)
{
	const char *m;

	*out_len = len;
	if (!a->nmaps)
		return p;
	m = map_path(a, p, len, out_len);
	if (!m) {
		*out_len = len;
		return p;
	}
	return m;
}

/* ---- mounts */

static struct hmount *find_mount(struct ha *a, uint64_t fsid, const char *node, const char *rid)
{
	size_t i;

	for (i = 0; i < a->nmounts; i++) {
		struct hmount *m = a->mounts[i];

		if (m->fsid == fsid && !strcmp(m->node, node) && !strcmp(m->rid, rid))
			return m;
	}
	return NULL;
}

static struct hmount *add_mount(struct ha *a, uint64_t fsid, const char *node, const char *rid)
{
	struct hmount **n;
	struct hmount *m;

	n = realloc(a->mounts, (a->nmounts + 1) * sizeof(*n));
	if (!n)
		return NULL;
	a->mounts = n;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->fsid = fsid;
	snprintf(m->node, sizeof(m->node), "%s", node);
	snprintf(m->rid, sizeof(m->rid), "%s", rid);
	m->next_seq = 1;
	m->id = a->next_id++;
	a->mounts[a->nmounts++] = m;
	return m;
}

static int load_periods(struct ha *a)
{
	struct hs_stmt *st;
	struct hmount *m;
	size_t i;
	int r = HS_DONE;

	/* each mount's latest period: where its records go on */
	if (hs_prepare(a->store, &st, "SELECT start_seq, start_ns, end_ns, attached FROM periods"
				      " WHERE mount_id = $1 ORDER BY start_seq DESC LIMIT 1"))
		return HS_ERR;
	for (i = 0; i < a->nmounts; i++) {
		m = a->mounts[i];
		hs_bi(st, 1, m->id);
		r = hs_step(st);
		if (r == HS_ROW) {
			m->has_cur = true;
			m->cur = (struct hperiod){ (uint64_t)hs_ci(st, 0), hs_ci(st, 1), hs_ci(st, 2),
						   (int)hs_ci(st, 3) };
		}
		hs_reset(st);
		if (r == HS_ERR)
			break;
	}
	hs_finalize(st);
	return r == HS_ERR ? HS_ERR : 0;
}

int ha_load(struct ha *a)
{
	struct hs_stmt *st;
	struct hmount *m;
	const void *p;
	size_t len;
	char node[HA_NODE_MAX + 1];
	char rid[17];
	int r;

	if (hs_prepare(a->store, &st, "SELECT id, fsid, node, rid, next_seq, records, lost, unknown,"
				      " first_ns, last_ns, attach_ns FROM mounts ORDER BY id"))
		return HS_ERR;
	while ((r = hs_step(st)) == HS_ROW) {
		p = hs_cb(st, 2, &len);
		snprintf(node, sizeof(node), "%.*s", p ? (int)len : 0, p ? (const char *)p : "");
		p = hs_cb(st, 3, &len);
		snprintf(rid, sizeof(rid), "%.*s", p ? (int)len : 0, p ? (const char *)p : "");
		m = add_mount(a, (uint64_t)hs_ci(st, 1), node, rid);
		if (!m) {
			hs_finalize(st);
			return hs_fail(a->store, HS_E_OTHER, "out of memory");
		}
		m->id = hs_ci(st, 0);
		if (m->id >= a->next_id)
			a->next_id = m->id + 1;
		m->next_seq = m->db_next_seq = (uint64_t)hs_ci(st, 4);
		m->records = hs_ci(st, 5);
		m->lost = hs_ci(st, 6);
		m->unknown = hs_ci(st, 7);
		m->first_ns = hs_ci(st, 8);
		m->last_ns = hs_ci(st, 9);
		m->attach_ns = hs_ci(st, 10);
		m->in_db = true;
	}
	hs_finalize(st);
	if (r == HS_ERR)
		return HS_ERR;
	return load_periods(a);
}

/* ---- gaps */

static struct hgap *pending_gap(struct hmount *m, uint64_t first)
{
	size_t i;

	for (i = 0; i < m->ngaps; i++)
		if (m->gaps[i].first == first)
			return &m->gaps[i];
	return NULL;
}

/* a gap row as it is to be written (or deleted: dead) */
static int put_gap(struct hmount *m, const struct hgap *g)
{
	struct hgap *p = pending_gap(m, g->first);
	struct hgap *n;

	if (p) {
		*p = *g;
		return 0;
	}
	n = realloc(m->gaps, (m->ngaps + 1) * sizeof(*n));
	if (!n)
		return HA_FATAL;
	m->gaps = n;
	m->gaps[m->ngaps++] = *g;
	m->dirty = true;
	return 0;
}

/* the gap of m that holds seq, if any: what is pending, else the database's */
static int find_gap(struct ha *a, struct hmount *m, uint64_t seq, struct hgap *out)
{
	size_t i;
	int r;

	for (i = 0; i < m->ngaps; i++) {
		if (!m->gaps[i].dead && m->gaps[i].first <= seq && seq <= m->gaps[i].last) {
			*out = m->gaps[i];
			return 1;
		}
	}
	if (!a->store || !m->in_db)
		return 0;
	/* the database is the writer's while it writes, and holds what it wrote after */
	if (ha_wait(a))
		return HA_FATAL;
	if (!a->find_gap && hs_prepare(a->store, &a->find_gap,
				       "SELECT first_seq, last_seq, from_ns, to_ns FROM gaps"
				       " WHERE mount_id = $1 AND first_seq <= $2 AND last_seq >= $2"))
		return HA_FATAL;
	hs_bi(a->find_gap, 1, m->id);
	hs_bi(a->find_gap, 2, (int64_t)seq);
	r = hs_step(a->find_gap);
	if (r == HS_ROW)
		*out = (struct hgap){ (uint64_t)hs_ci(a->find_gap, 0), (uint64_t)hs_ci(a->find_gap, 1),
				      hs_ci(a->find_gap, 2), hs_ci(a->find_gap, 3), false };
	hs_reset(a->find_gap);
	if (r == HS_ERR)
		return HA_FATAL;
	/* a row changed since the last flush is what pending says */
	if (r == HS_ROW && pending_gap(m, out->first))
		return 0;
	return r == HS_ROW;
}

/* seqs [first, last] of m were not seen: a gap from from_ns to to_ns */
static int add_gap(struct ha *a, struct hmount *m, uint64_t first, uint64_t last, int64_t to_ns)
{
	struct hgap g = { first, last, m->last_ns, to_ns, false };

	a->c.gaps++;
	a->c.lost += last - first + 1;
	m->lost += (int64_t)(last - first + 1);
	m->dirty = true;
	if (!to_ns) {
		m->open_gap = true;
		m->og = g;
	}
	return put_gap(m, &g);
}

/* a late record, seq inside gap g: the gap loses it */
static int split_gap(struct ha *a, struct hmount *m, const struct hgap *g, uint64_t seq,
		     int64_t t)
{
	struct hgap lo = { g->first, seq - 1, g->from_ns, t, false };
	struct hgap hi = { seq + 1, g->last, t, g->to_ns, false };
	bool was_open = m->open_gap && m->og.first == g->first;

	a->c.lost--;
	m->lost--;
	m->dirty = true;
	if (seq == g->first)
		lo = (struct hgap){ g->first, g->first, 0, 0, true };
	if (put_gap(m, &lo))
		return HA_FATAL;
	m->open_gap = false;
	if (seq < g->last) {
		if (put_gap(m, &hi))
			return HA_FATAL;
		if (was_open) {
			m->open_gap = true;
			m->og = hi;
		}
	}
	return 0;
}

/* ---- periods */

static int new_period(struct hmount *m, uint64_t seq, int64_t t, int attached)
{
	struct hperiod *n;

	if (m->has_cur && m->cur_dirty) {
		n = realloc(m->done, (m->ndone + 1) * sizeof(*n));
		if (!n)
			return HA_FATAL;
		m->done = n;
		m->done[m->ndone++] = m->cur;
	}
	m->cur = (struct hperiod){ seq, t, t, attached };
	m->has_cur = true;
	m->cur_dirty = true;
	return 0;
}

/* a late ATTACH, of a period before the current one */
static int late_period(struct hmount *m, uint64_t seq, int64_t t)
{
	struct hperiod *n = realloc(m->done, (m->ndone + 1) * sizeof(*n));

	if (!n)
		return HA_FATAL;
	m->done = n;
	m->done[m->ndone++] = (struct hperiod){ seq, t, t, 1 };
	return 0;
}

/* ---- files */

static struct fdelta *slot_of(struct ha *a, uint64_t fsid, uint64_t ino)
{
	uint64_t h = (fsid * 0x9e3779b97f4a7c15ULL) ^ (ino * 0xc2b2ae3d27d4eb4fULL);
	size_t i = (size_t)(h ^ (h >> 29)) & (a->cap - 1);

	while (a->tab[i].ino && (a->tab[i].ino != ino || a->tab[i].fsid != fsid))
		i = (i + 1) & (a->cap - 1);
	return &a->tab[i];
}

static int grow(struct ha *a)
{
	struct fdelta *old = a->tab;
	size_t ocap = a->cap;
	struct fdelta *s;
	size_t i;

	a->tab = calloc(ocap * 2, sizeof(*a->tab));
	if (!a->tab) {
		a->tab = old;
		return HA_FATAL;
	}
	a->cap = ocap * 2;
	for (i = 0; i < ocap; i++) {
		if (!old[i].ino)
			continue;
		s = slot_of(a, old[i].fsid, old[i].ino);
		*s = old[i];
	}
	free(old);
	return 0;
}

static struct fdelta *delta(struct ha *a, uint64_t fsid, uint64_t ino)
{
	struct fdelta *d;

	if ((a->nfiles + 1) * 4 > a->cap * 3 && grow(a))
		return NULL;
	d = slot_of(a, fsid, ino);
	if (!d->ino) {
		*d = (struct fdelta){ .fsid = fsid, .ino = ino, .uid = -1, .first_ns = INT64_MAX };
		a->nfiles++;
	}
	return d;
}

/* does (t, mount, uid) win over what d has, as the upsert decides */
static bool reader_wins(const struct fdelta *d, int64_t t, const struct hmount *m, int64_t uid)
{
	int64_t mid = m ? m->id : 0;

	return t > d->last_use ||
	       (t == d->last_use && (mid > d->reader_id || (mid == d->reader_id && uid > d->uid)));
}

static int set_path(struct fdelta *d, const char *p, size_t len, int64_t t)
{
	int c;
	char *n;

	if (!p)
		return 0;
	/* a busy file names the same path again and again */
	if (d->path && len == d->path_len && !memcmp(p, d->path, len)) {
		if (t > d->path_ns)
			d->path_ns = t;
		return 0;
	}
	if (d->path) {
		c = memcmp(p, d->path, len < d->path_len ? len : d->path_len);
		if (t < d->path_ns || (t == d->path_ns && (c < 0 || (c == 0 && len <= d->path_len))))
			return 0;
	}
	n = malloc(len ? len : 1);
	if (!n)
		return HA_FATAL;
	memcpy(n, p, len);
	free(d->path);
	d->path = n;
	d->path_len = len;
	d->path_ns = t;
	return 0;
}

static void add_heat(struct ha *a, struct fdelta *d, int64_t t, double w)
{
	if (t > d->heat_ns) {
		d->heat = d->heat * ha_decay(a->period_s, a->loss, t - d->heat_ns) + w;
		d->heat_ns = t;
	} else {
		d->heat += w * ha_decay(a->period_s, a->loss, d->heat_ns - t);
	}
}

#define MAXV(a, b) ((a) > (b) ? (a) : (b))

/* what an OPEN, READ or MMAP record does to its file */
static int file_effect(struct ha *a, struct hmount *m, const nf_rec_t *r, const char *path,
		       size_t path_len)
{
	int64_t t = (int64_t)r->time_ns;
	int64_t calls = r->calls ? r->calls : 1;
	struct fdelta *d = delta(a, m->fsid, r->ino);

	if (!d || set_path(d, path, path_len, t))
		return HA_FATAL;
	if (t < d->first_ns)
		d->first_ns = t;
	if (r->op == SCOUTFS_NOTIFY_OP_OPEN) {
		d->opens += calls;
		d->last_open = MAXV(d->last_open, t);
		return 0;
	}
	if (r->op == SCOUTFS_NOTIFY_OP_READ) {
		d->calls += calls;
		d->bytes += (int64_t)r->len;
		d->last_read = MAXV(d->last_read, t);
	} else {
		calls = 1;
		d->mmaps++;
		d->last_mmap = MAXV(d->last_mmap, t);
	}
	if (reader_wins(d, t, m, r->uid)) {
		d->last_use = t;
		d->reader_id = m->id;
		d->uid = r->uid;
	}
	add_heat(a, d, t, (double)calls);
	return 0;
}

static bool known_op(uint32_t op)
{
	return op == SCOUTFS_NOTIFY_OP_OPEN || op == SCOUTFS_NOTIFY_OP_READ ||
	       op == SCOUTFS_NOTIFY_OP_ATTACH || op == SCOUTFS_NOTIFY_OP_MMAP;
}

static int check_rec(const nf_rec_t *r, char *err, size_t errlen)
{
	if (r->seq == 0 || r->seq > INT64_MAX) {
		snprintf(err, errlen, "seq %" PRIu64 " out of range", (uint64_t)r->seq);
		return HA_REJECT;
	}
	if (r->time_ns == 0 || r->time_ns > INT64_MAX || r->len > INT64_MAX) {
		snprintf(err, errlen, "seq %" PRIu64 ": time or len out of range", (uint64_t)r->seq);
		return HA_REJECT;
	}
	if (known_op(r->op) && r->op != SCOUTFS_NOTIFY_OP_ATTACH && r->ino == 0) {
		snprintf(err, errlen, "seq %" PRIu64 ": a %s record of inode 0", (uint64_t)r->seq,
			 nf_op_name(r->op));
		return HA_REJECT;
	}
	return HA_OK;
}

/* what a record does, once it is known to be new */
static int effect(struct ha *a, struct hmount *m, const nf_rec_t *r, const char *path,
		  size_t path_len)
{
	int64_t t = (int64_t)r->time_ns;

	m->records++;
	m->dirty = true;
	a->c.applied++;
	if (!m->first_ns || t < m->first_ns)
		m->first_ns = t;
	m->last_ns = MAXV(m->last_ns, t);
	if (r->op == SCOUTFS_NOTIFY_OP_ATTACH) {
		m->attach_ns = MAXV(m->attach_ns, t);
		if (m->has_cur && r->seq < m->cur.start_seq)
			return late_period(m, r->seq, t);
		return new_period(m, r->seq, t, 1);
	}
	if (!m->has_cur && new_period(m, r->seq, t, 0))
		return HA_FATAL;
	if (r->seq >= m->cur.start_seq && t > m->cur.end_ns) {
		m->cur.end_ns = t;
		m->cur_dirty = true;
	}
	if (!known_op(r->op)) {
		m->unknown++;
		a->c.unknown++;
		return 0;
	}
	return file_effect(a, m, r, path, path_len);
}

/* one checked record of mount m */
static int apply_rec(struct ha *a, struct hmount *m, const nf_rec_t *r, const char *path,
		     size_t path_len)
{
	uint64_t s = r->seq;
	struct hgap g;
	int ret;

	if (path && a->nmaps) {
		path = map_path(a, path, path_len, &path_len);
		if (!path)
			return HA_FATAL;
	}
	if (s < m->next_seq) {
		ret = find_gap(a, m, s, &g);
		if (ret < 0)
			return HA_FATAL;
		if (!ret) {
			a->c.duplicate++;
			return HA_OK;
		}
		a->c.late++;
		if (split_gap(a, m, &g, s, (int64_t)r->time_ns))
			return HA_FATAL;
		return effect(a, m, r, path, path_len);
	}
	if (s > m->next_seq && add_gap(a, m, m->next_seq, s - 1, (int64_t)r->time_ns))
		return HA_FATAL;
	if (m->open_gap && m->og.last < s) {
		m->og.to_ns = (int64_t)r->time_ns;
		m->open_gap = false;
		if (put_gap(m, &m->og))
			return HA_FATAL;
	}
	m->next_seq = s + 1;
	return effect(a, m, r, path, path_len);
}

/* a GAP message: seqs after_seq + 1 to seq - 1 were lost */
static int apply_gap(struct ha *a, struct hmount *m, uint64_t seq)
{
	if (seq - 1 < m->next_seq) {
		a->c.duplicate++;
		return HA_OK;
	}
	if (add_gap(a, m, m->next_seq, seq - 1, 0))
		return HA_FATAL;
	m->next_seq = seq;
	return HA_OK;
}

static bool rid_ok(const char *rid)
{
	size_t i;

	if (strlen(rid) != 16)
		return false;
	for (i = 0; i < 16; i++)
		if (!((rid[i] >= '0' && rid[i] <= '9') || (rid[i] >= 'a' && rid[i] <= 'f')))
			return false;
	return true;
}

/* fsid as `stat -f -c %i` spells it: 1 to 16 lower case hex digits */
static bool fsid_parse(const char *s, size_t len, uint64_t *v)
{
	size_t i;

	if (len == 0 || len > 16)
		return false;
	*v = 0;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			*v = *v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v = *v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return false;
	}
	return true;
}

static struct hmount *mount_of(struct ha *a, uint64_t fsid, const char *node, const char *rid)
{
	struct hmount *m = find_mount(a, fsid, node, rid);

	return m ? m : add_mount(a, fsid, node, rid);
}

int ha_rec(struct ha *a, uint64_t fsid, const char *node, const char *rid, const nf_rec_t *r,
	   const char *path, size_t path_len, char *err, size_t errlen)
{
	struct hmount *m;

	if (!ha_token_ok(node, strlen(node)) || !rid_ok(rid)) {
		snprintf(err, errlen, "bad node or rid");
		a->c.rejected++;
		return HA_REJECT;
	}
	if (check_rec(r, err, errlen)) {
		a->c.rejected++;
		return HA_REJECT;
	}
	m = mount_of(a, fsid, node, rid);
	if (!m)
		return HA_FATAL;
	return apply_rec(a, m, r, path, path_len);
}

/* ---- messages */

struct subj {
	char fsid[HA_NODE_MAX + 1];
	char node[HA_NODE_MAX + 1];
	char op[HA_NODE_MAX + 1];
};

/* scoutfs.notify.<fsid>.<node>.<op>, each a token */
static bool split_subject(const char *s, size_t len, struct subj *out)
{
	static const char prefix[] = HA_SUBJECT_PREFIX ".";
	char *dst[3] = { out->fsid, out->node, out->op };
	const char *end = s + len;
	const char *e;
	int i;

	if (len < sizeof(prefix) - 1 || memcmp(s, prefix, sizeof(prefix) - 1))
		return false;
	s += sizeof(prefix) - 1;
	for (i = 0; i < 3; i++) {
		e = memchr(s, '.', (size_t)(end - s));
		if ((i < 2) != (e != NULL))
			return false;
		if (!e)
			e = end;
		if (!ha_token_ok(s, (size_t)(e - s)))
			return false;
		memcpy(dst[i], s, (size_t)(e - s));
		dst[i][e - s] = 0;
		s = e + 1;
	}
	return true;
}

/* the subject's op token for a record of op */
static void op_token(uint32_t op, bool gap, char *buf, size_t size)
{
	const char *n = gap ? "GAP" : nf_op_name(op);
	size_t i;

	if (!n) {
		snprintf(buf, size, "op%u", op);
		return;
	}
	for (i = 0; n[i] && i + 1 < size; i++)
		buf[i] = (char)(n[i] - 'A' + 'a');
	buf[i] = 0;
}

/* the checks one parsed line must pass against its subject */
static int check_line(const struct nj_record *r, const struct subj *sj, bool batch,
		      uint64_t *fsid, char *err, size_t errlen)
{
	char tok[24];

	if (!r->fsid || !r->node || !r->rid) {
		snprintf(err, errlen, "a record without fsid, node or rid");
		return HA_REJECT;
	}
	if (strcmp(r->fsid, sj->fsid) || strcmp(r->node, sj->node)) {
		snprintf(err, errlen, "its fsid or node differ from its subject's");
		return HA_REJECT;
	}
	if (!fsid_parse(r->fsid, strlen(r->fsid), fsid) || !rid_ok(r->rid)) {
		snprintf(err, errlen, "bad fsid or rid");
		return HA_REJECT;
	}
	op_token(r->rec.op, r->gap, tok, sizeof(tok));
	if (!batch && strcmp(tok, sj->op)) {
		snprintf(err, errlen, "its op differs from its subject's");
		return HA_REJECT;
	}
	if (!r->gap)
		return check_rec(&r->rec, err, errlen);
	return HA_OK;
}

/* Nats-Msg-Id: <fsid>.<rid>.<seq>[.gap], or <fsid>.<rid>.<first>-<last>.batch */
static int check_msgid(const struct nj_record *first, const struct nj_record *last, bool batch,
		       const char *id, size_t len, char *err, size_t errlen)
{
	char want[128];
	char tail[48];
	size_t n;

	if (!id)
		return HA_OK;
	/* a batch's first seq may be of a record the forwarder skipped */
	snprintf(want, sizeof(want), "%s.%s.", first->fsid, first->rid);
	n = strlen(want);
	if (batch)
		snprintf(tail, sizeof(tail), "-%" PRIu64 ".batch", last->seq);
	else
		snprintf(tail, sizeof(tail), "%" PRIu64 "%s", first->seq, first->gap ? ".gap" : "");
	if (len < n + strlen(tail) || memcmp(want, id, n) ||
	    memcmp(id + len - strlen(tail), tail, strlen(tail)) || (!batch && len != n + strlen(tail))) {
		snprintf(err, errlen, "its Nats-Msg-Id is not %s%s%s", want, batch ? "<first>" : "", tail);
		return HA_REJECT;
	}
	return HA_OK;
}

static void free_lines(struct nj_record *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		nj_free(&r[i]);
	free(r);
}

/* parse every line (one, unless batch) into *out: all or nothing */
static int parse_lines(const char *data, size_t len, bool batch, struct nj_record **out,
		       size_t *n, char *err, size_t errlen)
{
	struct nj_record *r = NULL;
	const char *nl;
	size_t cap = 0;
	char why[160];

	*n = 0;
	do {
		nl = batch ? memchr(data, '\n', len) : NULL;
		if (*n == cap) {
			struct nj_record *x;

			cap = cap ? cap * 2 : 4;
			if (cap > BATCH_MAX || !(x = realloc(r, cap * sizeof(*x)))) {
				snprintf(err, errlen, "more than %d records in a message", BATCH_MAX);
				free_lines(r, *n);
				return HA_REJECT;
			}
			r = x;
		}
		if (nj_parse(data, nl ? (size_t)(nl - data) : len, &r[*n], why, sizeof(why))) {
			snprintf(err, errlen, "record %zu: not a schema %d record: %s", *n + 1,
				 NF_JSON_SCHEMA, why);
			free_lines(r, *n);
			return HA_REJECT;
		}
		(*n)++;
		if (nl) {
			len -= (size_t)(nl - data) + 1;
			data = nl + 1;
		}
	} while (nl);
	*out = r;
	return HA_OK;
}

static int apply_lines(struct ha *a, struct nj_record *r, size_t n, uint64_t fsid)
{
	struct hmount *m;
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		m = mount_of(a, fsid, r[i].node, r[i].rid);
		if (!m)
			return HA_FATAL;
		ret = r[i].gap ? apply_gap(a, m, r[i].seq) :
				 apply_rec(a, m, &r[i].rec, r[i].path, r[i].path_len);
		if (ret)
			return ret;
	}
	return HA_OK;
}

int ha_msg(struct ha *a, const char *subj, size_t subj_len, const char *msgid, size_t msgid_len,
	   const char *data, size_t len, char *err, size_t errlen)
{
	struct nj_record *r = NULL;
	struct subj sj;
	uint64_t fsid = 0;
	uint64_t f;
	size_t n = 0;
	size_t i;
	bool batch;
	int ret;

	a->c.messages++;
	if (!split_subject(subj, subj_len, &sj)) {
		snprintf(err, errlen, "not a " HA_SUBJECT_PREFIX ".<fsid>.<node>.<op> subject");
		ret = HA_REJECT;
		goto out;
	}
	batch = !strcmp(sj.op, "batch");
	ret = parse_lines(data, len, batch, &r, &n, err, errlen);
	for (i = 0; !ret && i < n; i++) {
		ret = check_line(&r[i], &sj, batch, &f, err, errlen);
		if (!ret && i && f != fsid) {
			snprintf(err, errlen, "records of two filesystems in one message");
			ret = HA_REJECT;
		}
		fsid = f;
		if (!ret && i && strcmp(r[i].rid, r[0].rid)) {
			snprintf(err, errlen, "records of two mounts in one message");
			ret = HA_REJECT;
		}
	}
	if (!ret)
		ret = check_msgid(&r[0], &r[n - 1], batch, msgid, msgid_len, err, errlen);
	if (!ret)
		ret = apply_lines(a, r, n, fsid);
out:
	if (ret == HA_REJECT)
		a->c.rejected++;
	if (r)
		free_lines(r, n);
	return ret;
}

/* ---- writing what is pending, in one transaction */

#define FILE_COLS	18	/* the values of one file's row */

#define UPSERT_HEAD \
	"INSERT INTO files (fsid, ino, path, path_ns, first_ns, seen_ns, last_open_ns," \
	" last_read_ns, last_mmap_ns, last_use_ns, opens, read_calls, read_bytes, mmaps," \
	" last_uid, last_mount, heat, heat_ns) VALUES "

#define UPSERT_CONFLICT	" ON CONFLICT (fsid, ino) DO UPDATE SET"

/* the path in the upsert, on an engine that writes it there (!path_apart) */
#define UPSERT_PATH \
	" path = CASE WHEN excluded.path_ns > files.path_ns OR (excluded.path_ns = files.path_ns" \
	"  AND excluded.path > files.path) OR files.path IS NULL THEN COALESCE(excluded.path, files.path)" \
	"  ELSE files.path END,"

#define UPSERT_SET \
	" path_ns = @MAX(files.path_ns, excluded.path_ns)," \
	" first_ns = @MIN(files.first_ns, excluded.first_ns)," \
	" seen_ns = @MAX(files.seen_ns, excluded.seen_ns)," \
	" last_open_ns = @MAX(files.last_open_ns, excluded.last_open_ns)," \
	" last_read_ns = @MAX(files.last_read_ns, excluded.last_read_ns)," \
	" last_mmap_ns = @MAX(files.last_mmap_ns, excluded.last_mmap_ns)," \
	" last_use_ns = @MAX(files.last_use_ns, excluded.last_use_ns)," \
	" opens = files.opens + excluded.opens," \
	" read_calls = files.read_calls + excluded.read_calls," \
	" read_bytes = files.read_bytes + excluded.read_bytes," \
	" mmaps = files.mmaps + excluded.mmaps," \
	" last_uid = CASE WHEN " READER_WINS " THEN excluded.last_uid ELSE files.last_uid END," \
	" last_mount = CASE WHEN " READER_WINS " THEN excluded.last_mount ELSE files.last_mount END," \
	" heat = " DECAYED("files") " + " DECAYED("excluded") "," \
	" heat_ns = @MAX(files.heat_ns, excluded.heat_ns)"

/*
 * t's heat decayed to the later of the two heat_ns: 1 - loss (%1$) to
 * the power of the periods (%2$ ns) between.  A heat under 1e-200, or
 * decayed over more than %3$ ns (to under 1e-100 of itself), is 0:
 * PostgreSQL's power() and float multiplication fail with "value out of
 * range: underflow" where C gives 0, which would refuse the transaction
 * of a file read long ago (or only opened, of heat 0 at heat_ns 0) and
 * again at every restart.
 */
#define DECAYED(t) \
	"(CASE WHEN " t ".heat < 1e-200 OR @MAX(files.heat_ns, excluded.heat_ns) - " t ".heat_ns" \
	" > %3$.17g THEN 0 ELSE " t ".heat * power(CAST(%1$.17g AS @REAL)," \
	" (@MAX(files.heat_ns, excluded.heat_ns) - " t ".heat_ns) / CAST(%2$.17g AS @REAL)) END)"

#define READER_WINS \
	"(excluded.last_use_ns > files.last_use_ns OR (excluded.last_use_ns = files.last_use_ns" \
	" AND (excluded.last_mount > files.last_mount OR (excluded.last_mount = files.last_mount" \
	" AND excluded.last_uid > files.last_uid))))"

/*
 * The upsert of nrows files' deltas in one statement, prepared (the
 * heat's constants in it): ($1, ... $18), ($19, ... $36), ...  A batch
 * never holds a file twice, so no statement names a row twice (which
 * PostgreSQL refuses).
 */
static int prepare_upsert_rows(struct hs *h, struct hs_stmt **st, int nrows)
{
	double l1 = 1.0 - h->heat_loss;
	double p = h->heat_period_s * 1e9;
	char *sql = NULL;
	size_t len = 0;
	FILE *f;
	int ret;
	int r;
	int c;

	f = open_memstream(&sql, &len);
	if (!f)
		return hs_fail(h, HS_E_OTHER, "out of memory");
	fputs(UPSERT_HEAD, f);
	for (r = 0; r < nrows; r++) {
		for (c = 1; c <= FILE_COLS; c++)
			fprintf(f, "%s$%d", c == 1 ? (r ? ", (" : "(") : ", ", r * FILE_COLS + c);
		fputc(')', f);
	}
	fputs(UPSERT_CONFLICT, f);
	if (!h->e->path_apart)
		fputs(UPSERT_PATH, f);
	fprintf(f, UPSERT_SET, l1, p, p * log(1e-100) / log(l1));
	if (fclose(f)) {
		free(sql);
		return hs_fail(h, HS_E_OTHER, "out of memory");
	}
	ret = hs_prepare_fmt(h, st, sql);
	free(sql);
	return ret;
}

/*
 * A file's path where the row has an older one (or one of the same time
 * that sorts lower, or none): UPSERT_PATH's rule, and no write where the
 * path is the row's already (path_apart).
 */
#define PATH_SQL \
	"UPDATE files SET path = $1 WHERE fsid = $2 AND ino = $3 AND (path IS NULL" \
	" OR (path <> $1 AND ($4 > path_ns OR ($4 = path_ns AND $1 > path))))"

int ha_upsert_prepare(struct hs *h, struct ha_upsert *u)
{
	memset(u, 0, sizeof(*u));
	if ((h->e->path_apart && hs_prepare(h, &u->path, PATH_SQL)) ||
	    prepare_upsert_rows(h, &u->row, 1) || prepare_upsert_rows(h, &u->rows, HA_UPSERT_ROWS)) {
		ha_upsert_finalize(u);
		return HS_ERR;
	}
	return 0;
}

void ha_upsert_finalize(struct ha_upsert *u)
{
	hs_finalize(u->path);
	hs_finalize(u->row);
	hs_finalize(u->rows);
	memset(u, 0, sizeof(*u));
}

/* one file's delta, as the values from $first on */
static void bind_file(struct hs_stmt *st, int first, const struct fdelta *d)
{
	int i = first;

	hs_bi(st, i++, (int64_t)d->fsid);
	hs_bi(st, i++, (int64_t)d->ino);
	hs_bb(st, i++, d->path, d->path_len);
	hs_bi(st, i++, d->path ? d->path_ns : 0);
	hs_bi(st, i++, d->first_ns);
	hs_bi(st, i++, d->seen_ns);
	hs_bi(st, i++, d->last_open);
	hs_bi(st, i++, d->last_read);
	hs_bi(st, i++, d->last_mmap);
	hs_bi(st, i++, d->last_use);
	hs_bi(st, i++, d->opens);
	hs_bi(st, i++, d->calls);
	hs_bi(st, i++, d->bytes);
	hs_bi(st, i++, d->mmaps);
	hs_bi(st, i++, d->uid);
	hs_bi(st, i++, d->reader_id);
	hs_bf(st, i++, d->heat);
	hs_bi(st, i, d->heat_ns);
}

/* n deltas, in the statement of n rows */
static int write_rows(struct hs_stmt *st, const struct fdelta *const *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		bind_file(st, (int)i * FILE_COLS + 1, d[i]);
	return hs_run(st);
}

/*
 * n deltas: first, where the path goes apart, the paths of the rows
 * that have another one (before the upsert advances path_ns), then the
 * rest of every row, in one statement when there are HA_UPSERT_ROWS of
 * them.
 */
int ha_upsert(struct ha_upsert *u, const struct fdelta *const *d, size_t n)
{
	size_t i;

	for (i = 0; i < n && u->path; i++) {
		if (!d[i]->path)
			continue;
		hs_bb(u->path, 1, d[i]->path, d[i]->path_len);
		hs_bi(u->path, 2, (int64_t)d[i]->fsid);
		hs_bi(u->path, 3, (int64_t)d[i]->ino);
		hs_bi(u->path, 4, d[i]->path_ns);
		if (hs_run(u->path))
			return HS_ERR;
	}
	if (n == HA_UPSERT_ROWS)
		return write_rows(u->rows, d, n);
	for (i = 0; i < n; i++)
		if (write_rows(u->row, &d[i], 1))
			return HS_ERR;
	return 0;
}

/*
 * Every file of the batch, HA_UPSERT_ROWS at a time, not waiting for
 * each statement's answer where the engine can.
 */
static int write_files(struct ha *a, struct batch *b)
{
	const struct fdelta *rows[HA_UPSERT_ROWS];
	struct writer *w = &a->w;
	size_t n = 0;
	size_t i;
	int ret;

	if (!w->up.row && ha_upsert_prepare(a->store, &w->up))
		return HS_ERR;
	ret = hs_pipeline(a->store, true);
	for (i = 0; i < b->cap && !ret; i++) {
		if (!b->tab[i].ino)
			continue;
		rows[n++] = &b->tab[i];
		b->rows++;
		if (n == HA_UPSERT_ROWS) {
			ret = ha_upsert(&w->up, rows, n);
			n = 0;
		}
	}
	if (!ret && n)
		ret = ha_upsert(&w->up, rows, n);
	if (hs_pipeline(a->store, false))
		ret = HS_ERR;
	return ret;
}

/* the counts at $first.. ($first + 6), as both statements have them */
static void bind_mount(struct hs_stmt *st, const struct hmount *m, int first)
{
	hs_bi(st, first, (int64_t)m->next_seq);
	hs_bi(st, first + 1, m->records);
	hs_bi(st, first + 2, m->lost);
	hs_bi(st, first + 3, m->unknown);
	hs_bi(st, first + 4, m->first_ns);
	hs_bi(st, first + 5, m->last_ns);
	hs_bi(st, first + 6, m->attach_ns);
}

/*
 * A mount's row: inserted, or updated where it still has the next seq
 * this process read, so that two processes applying the same mount's
 * records can't both count them.
 */
static int write_mount(struct ha *a, struct hs_stmt *ins, struct hs_stmt *upd, struct hmount *m)
{
	struct hs_stmt *st = m->in_db ? upd : ins;

	if (m->in_db) {
		bind_mount(st, m, 1);
		hs_bi(st, 8, m->id);
		hs_bi(st, 9, (int64_t)m->db_next_seq);
	} else {
		hs_bi(st, 1, m->id);
		bind_mount(st, m, 2);
		hs_bi(st, 9, (int64_t)m->fsid);
		hs_bt(st, 10, m->node);
		hs_bt(st, 11, m->rid);
	}
	if (hs_step(st) == HS_ERR) {
		hs_reset(st);
		if (!m->in_db && a->store->kind == HS_E_OTHER)
			a->store->kind = HS_E_CONFLICT;
		return HS_ERR;
	}
	if (hs_changes(st) != 1) {
		hs_reset(st);
		return hs_fail(a->store, HS_E_CONFLICT,
			       "another process applied records of mount %" PRIx64 " %s %s",
			       m->fsid, m->node, m->rid);
	}
	hs_reset(st);
	return 0;
}

static int write_period(struct hs_stmt *st, const struct hmount *m, const struct hperiod *p)
{
	hs_bi(st, 1, m->id);
	hs_bi(st, 2, (int64_t)p->start_seq);
	hs_bi(st, 3, p->start_ns);
	hs_bi(st, 4, p->end_ns);
	hs_bi(st, 5, p->attached);
	return hs_run(st);
}

static int write_gap(struct hs_stmt *put, struct hs_stmt *del, const struct hmount *m,
		     const struct hgap *g)
{
	struct hs_stmt *st = g->dead ? del : put;

	hs_bi(st, 1, m->id);
	hs_bi(st, 2, (int64_t)g->first);
	if (!g->dead) {
		hs_bi(st, 3, (int64_t)g->last);
		hs_bi(st, 4, (int64_t)(g->last - g->first + 1));
		hs_bi(st, 5, g->from_ns);
		hs_bi(st, 6, g->to_ns);
	}
	return hs_run(st);
}

static int write_mount_rows(struct ha *a, struct hmount *m, struct hs_stmt **st)
{
	size_t i;

	if (write_mount(a, st[W_MOUNT_INS], st[W_MOUNT_UPD], m))
		return HS_ERR;
	for (i = 0; i < m->ndone; i++)
		if (write_period(st[W_PERIOD], m, &m->done[i]))
			return HS_ERR;
	if (m->cur_dirty && write_period(st[W_PERIOD], m, &m->cur))
		return HS_ERR;
	for (i = 0; i < m->ngaps; i++)
		if (write_gap(st[W_GAP_PUT], st[W_GAP_DEL], m, &m->gaps[i]))
			return HS_ERR;
	return 0;
}

static const char *const mount_sql[] = {
	[W_MOUNT_INS] = "INSERT INTO mounts (id, next_seq, records, lost, unknown, first_ns, last_ns,"
	" attach_ns, fsid, node, rid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
	[W_MOUNT_UPD] = "UPDATE mounts SET next_seq = $1, records = $2, lost = $3, unknown = $4,"
	" first_ns = $5, last_ns = $6, attach_ns = $7 WHERE id = $8 AND next_seq = $9",
	[W_PERIOD] = "INSERT INTO periods (mount_id, start_seq, start_ns, end_ns, attached)"
	" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mount_id, start_seq) DO UPDATE SET"
	" start_ns = excluded.start_ns, end_ns = excluded.end_ns, attached = excluded.attached",
	[W_GAP_PUT] = "INSERT INTO gaps (mount_id, first_seq, last_seq, lost, from_ns, to_ns)"
	" VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (mount_id, first_seq) DO UPDATE SET"
	" last_seq = excluded.last_seq, lost = excluded.lost, from_ns = excluded.from_ns,"
	" to_ns = excluded.to_ns",
	[W_GAP_DEL] = "DELETE FROM gaps WHERE mount_id = $1 AND first_seq = $2",
};

static int write_mounts(struct ha *a, struct batch *b)
{
	struct writer *w = &a->w;
	size_t i;

	for (i = 0; i < W_META; i++)
		if (!w->st[i] && hs_prepare(a->store, &w->st[i], mount_sql[i]))
			return HS_ERR;
	for (i = 0; i < b->nmounts; i++)
		if (write_mount_rows(a, &b->mounts[i], w->st))
			return HS_ERR;
	return 0;
}

/* the batch, its mounts and position in one transaction: 0, or HS_ERR rolled back */
static int write_batch(struct ha *a, struct batch *b)
{
	struct writer *w = &a->w;

	if (hs_begin(a->store))
		return HS_ERR;
	if (write_mounts(a, b) || write_files(a, b) ||
	    (b->pos_key && (hs_bt(w->st[W_META], 1, b->pos_key), hs_bt(w->st[W_META], 2, b->pos_val),
			    hs_run(w->st[W_META]))) ||
	    hs_commit(a->store)) {
		hs_rollback(a->store);
		return HS_ERR;
	}
	return 0;
}

static void free_batch(struct batch *b)
{
	size_t i;

	if (!b)
		return;
	for (i = 0; i < b->cap; i++)
		free(b->tab[i].path);
	free(b->tab);
	for (i = 0; i < b->nmounts; i++) {
		free(b->mounts[i].done);
		free(b->mounts[i].gaps);
	}
	free(b->mounts);
	free(b);
}

/*
 * The writer thread: each batch handed to it in one transaction, then
 * its caller's callback (which acknowledges what it held), while the
 * main thread applies what comes next.
 */
static void *writer_main(void *arg)
{
	struct ha *a = arg;
	struct writer *w = &a->w;
	struct batch *b;
	uint64_t rows;
	int ret;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->b && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->b)
			break;
		b = w->b;
		pthread_mutex_unlock(&w->mu);
		ret = write_batch(a, b);
		if (b->done)
			b->done(b->cookie, ret);
		rows = b->rows;
		free_batch(b);
		pthread_mutex_lock(&w->mu);
		if (ret)
			w->failed = true;
		else
			w->flushes++;
		w->rows += rows;
		w->b = NULL;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int ha_thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t all;
	sigset_t old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

static int writer_start(struct ha *a)
{
	struct writer *w = &a->w;
	int err;

	if (w->running)
		return 0;
	err = ha_thread_start(&w->th, writer_main, a);
	if (err)
		return hs_fail(a->store, HS_E_OTHER, "cannot start the writer thread: %s", strerror(err));
	w->running = true;
	return 0;
}

static void writer_stop(struct ha *a)
{
	struct writer *w = &a->w;
	size_t i;

	if (w->running) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->th, NULL);
		w->running = false;
	}
	for (i = 0; i < W_NR; i++) {
		hs_finalize(w->st[i]);
		w->st[i] = NULL;
	}
	ha_upsert_finalize(&w->up);
}

bool ha_busy(struct ha *a)
{
	bool busy;

	pthread_mutex_lock(&a->w.mu);
	busy = a->w.b != NULL;
	pthread_mutex_unlock(&a->w.mu);
	return busy;
}

int ha_wait(struct ha *a)
{
	struct writer *w = &a->w;
	bool failed;

	if (!w->running)
		return w->failed ? HS_ERR : 0;
	pthread_mutex_lock(&w->mu);
	while (w->b)
		pthread_cond_wait(&w->cv, &w->mu);
	failed = w->failed;
	a->c.flushes = w->flushes;
	a->c.rows = w->rows;
	pthread_mutex_unlock(&w->mu);
	return failed ? HS_ERR : 0;
}

/*
 * What is pending, as a batch: the files' table itself (a new one
 * takes its place) and a copy of every mount with changes, which hands
 * over its changed periods and gaps; the mounts go on as if committed
 * (a failed batch ends the process: see ha_flush_async()).
 */
static struct batch *freeze(struct ha *a, const char *pos_key, const char *pos_val)
{
	struct batch *b = calloc(1, sizeof(*b));
	struct fdelta *tab = calloc(a->cap, sizeof(*tab));
	size_t n = 0;
	size_t i;

	for (i = 0; i < a->nmounts; i++)
		n += a->mounts[i]->dirty || a->mounts[i]->cur_dirty;
	if (!b || !tab || !(b->mounts = calloc(n ? n : 1, sizeof(*b->mounts)))) {
		if (b)
			free(b->mounts);
		free(b);
		free(tab);
		return NULL;
	}
	b->tab = a->tab;
	b->cap = a->cap;
	b->nfiles = a->nfiles;
	a->tab = tab;
	a->nfiles = 0;
	for (i = 0; i < a->nmounts; i++) {
		struct hmount *m = a->mounts[i];

		if (m->dirty || m->cur_dirty) {
			b->mounts[b->nmounts++] = *m;
			m->done = NULL;
			m->gaps = NULL;
		}
		m->in_db = true;
		m->db_next_seq = m->next_seq;
		m->dirty = m->cur_dirty = false;
		m->ndone = 0;
		m->ngaps = 0;
	}
	if (pos_key) {
		b->pos_key = pos_key;
		snprintf(b->pos_val, sizeof(b->pos_val), "%s", pos_val);
	}
	return b;
}

int ha_flush_async(struct ha *a, const char *pos_key, const char *pos_val, ha_done_fn *done,
		   void *cookie)
{
	struct writer *w = &a->w;
	struct batch *b;

	if (!a->store) {
		if (done)
			done(cookie, 0);
		return 0;
	}
	if (ha_wait(a) || writer_start(a) ||
	    (!w->st[W_META] && hs_meta_prepare(a->store, &w->st[W_META])))
		return HS_ERR;
	/* the main thread's statement, which must not be in use while the writer runs */
	hs_finalize(a->find_gap);
	a->find_gap = NULL;
	b = freeze(a, pos_key, pos_val);
	if (!b)
		return hs_fail(a->store, HS_E_OTHER, "out of memory");
	b->done = done;
	b->cookie = cookie;
	pthread_mutex_lock(&w->mu);
	w->b = b;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int ha_flush(struct ha *a, const char *pos_key, const char *pos_val)
{
	if (ha_flush_async(a, pos_key, pos_val, NULL, NULL))
		return HS_ERR;
	return ha_wait(a);
}
