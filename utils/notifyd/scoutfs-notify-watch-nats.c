/*
 * scoutfs-notify-watch-nats: read the access records of every node back
 * from the NATS JetStream stream that scoutfs-notify-forward publishes
 * to, from any machine that reaches NATS, and print them as
 * scoutfs-notify-watch does: the same text lines (each after the fsid
 * and node it came from) and the same JSON objects, gaps included.
 *
 * Each message's JSON payload is parsed back (notify-json.c, strictly)
 * into a record, its path and origin, and printed by notify-format.c,
 * so a file name can no more forge a line here than it can locally.
 *
 * Without --durable it reads new records (or from --since, --from-seq,
 * --all) with an ephemeral consumer.  With --durable NAME the server
 * keeps its place: each batch is printed and flushed, then acknowledged
 * (ack-all up to the batch's last message), so a consumer stopped and
 * started again carries on with the first record it has not printed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>

#include "notify-format.h"
#include "notify-json.h"
#include "notify-nats.h"

#define PROG		"scoutfs-notify-watch-nats"
#define FETCH_MAX	256
#define OPS_MAX		16

/* the command line, checked (parse_opts()) */
struct opts {
	struct nn_opts nopts;
	const char *stream;
	const char *durable;
	const char *f_fsid;
	const char *f_node;
	char *ops[OPS_MAX];	/* --op's names, in opsbuf */
	char *opsbuf;
	int nops;
	bool json;
	uint64_t count;
	uint64_t reorder_ms;
	uint64_t ack_wait_ms;	/* once bound, the consumer's */
	int64_t since;		/* --since in ns, or -1 */
	uint64_t from_seq;
	bool all;
	int starts;		/* how many of --all, --since and --from-seq */
};

static struct opts opt = {
	.stream = NN_DEFAULT_STREAM,
	.reorder_ms = 10000,
	.ack_wait_ms = 30000,
	.since = -1,
};
static uint64_t printed;
static int64_t skip_before_ns;	/* skip what was stored before this (since_asked()) */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [options]\n"
		"\n"
		"Print the access records of every node from the NATS JetStream stream\n"
		"scoutfs-notify-forward publishes to, as scoutfs-notify-watch prints them\n"
		"(text lines start with the fsid and node).  Default: new records only.\n"
		"\n"
		NN_OPTS_HELP
		"      --stream NAME      the stream (default " NN_DEFAULT_STREAM ")\n"
		"      --all              from the first record the stream holds\n"
		"      --since TIME       from TIME: RFC 3339 (2026-11-26T08:00:00Z) or a\n"
		"                         duration ago (90s, 10m, 2h, 1d)\n"
		"      --from-seq N       from the stream's message N\n"
		"      --durable NAME     a durable consumer: after a restart it carries on\n"
		"                         where it stopped (the start options only apply\n"
		"                         when it is created)\n"
		"      --fsid FSID        only this filesystem (as stat -f -c %%i prints it)\n"
		"      --node NAME        only this node\n"
		"      --op LIST          only these ops (open,read,attach,mmap,opN);\n"
		"                         gaps are always printed\n"
		"      --reorder-wait DUR  how long a mount's record waits for the ones\n"
		"                         before it (10s; see below)\n"
		"      --ack-wait DUR     a new durable's ack wait: how long the server\n"
		"                         waits for an ack before it delivers again (30s)\n"
		"  -j, --json             JSON lines instead of text\n"
		"  -n, --count N          exit after N lines (with batched messages, after\n"
		"                         the message that reaches N)\n"
		"  -h, --help             this text\n"
		"\n"
		"Each mount's records are printed in seq order: after a NATS server\n"
		"failure the stream can hold some later than records after them.\n"
		"See scoutfs-notify-watch-nats(8).\n");
}

/* a duration, 10s or 500ms (a bare number is seconds), of at least min_ms; 0 or -1 */
static int parse_ms(const char *s, uint64_t *ms, uint64_t min_ms)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-' || (strcmp(end, "ms") && strcmp(end, "s") && *end) ||
	    v > UINT64_MAX / 1000000)
		return -1;
	if (strcmp(end, "ms"))
		v *= 1000;
	if (v < min_ms)
		return -1;
	*ms = v;
	return 0;
}

/* RFC 3339 (Z or +hh:mm, optional fraction), or a duration ago; ns, or -1 */
static int64_t parse_since(const char *s)
{
	struct tm tm = { 0 };
	struct timespec now;
	const char *p;
	char *end;
	int64_t frac = 0;
	int64_t scale = 100000000;
	unsigned long long v;
	int off = 0;
	int hh;
	int mm;
	int n = 0;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) == 6 && n == 19) {
		p = s + n;
		if (*p == '.') {
			for (p++; *p >= '0' && *p <= '9'; p++) {
				frac += (*p - '0') * scale;
				scale /= 10;
			}
		}
		if (*p == 'Z' && p[1] == '\0') {
			off = 0;
		} else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) == 2 &&
			   n == 5 && p[6] == '\0') {
			off = (*p == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
		} else {
			return -1;
		}
		if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
		    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
			return -1;
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		t = timegm(&tm);
		if (t < 0)
			return -1;
		return ((int64_t)t - off) * 1000000000LL + frac;
	}
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || v > 100ULL * 365 * 86400)
		return -1;
	if (!strcmp(end, "s"))
		v *= 1;
	else if (!strcmp(end, "m"))
		v *= 60;
	else if (!strcmp(end, "h"))
		v *= 3600;
	else if (!strcmp(end, "d"))
		v *= 86400;
	else
		return -1;
	clock_gettime(CLOCK_REALTIME, &now);
	return ((int64_t)now.tv_sec - (int64_t)v) * 1000000000LL + now.tv_nsec;
}

static bool op_ok(const char *s)
{
	static const char *const known[] = { "open", "read", "attach", "mmap" };
	char *end;
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(s, known[i]))
			return true;
	if (!strncmp(s, "op", 2) && s[2] >= '0' && s[2] <= '9') {
		errno = 0;
		if (strtoul(s + 2, &end, 10) <= UINT32_MAX && !*end && !errno)
			return true;
	}
	return false;
}

/* subject tokens: scoutfs.notify.<fsid>.<node>.<op>; false if not so */
static bool split_subject(const char *subj, char *fs, char *nd, char *op, size_t size)
{
	const char *p;
	const char *e;
	char *outs[3] = { fs, nd, op };
	int i;

	if (strncmp(subj, NN_SUBJECT_PREFIX ".", sizeof(NN_SUBJECT_PREFIX)))
		return false;
	p = subj + sizeof(NN_SUBJECT_PREFIX);
	for (i = 0; i < 3; i++) {
		e = strchr(p, '.');
		if (i < 2 && !e)
			return false;
		if (i == 2 && e)
			return false;
		if (!e)
			e = p + strlen(p);
		if (e == p || (size_t)(e - p) >= size)
			return false;
		memcpy(outs[i], p, e - p);
		outs[i][e - p] = '\0';
		p = e + 1;
	}
	return true;
}

static bool wanted_op(const char *op)
{
	int i;

	if (!opt.nops || !strcmp(op, "gap"))
		return true;
	for (i = 0; i < opt.nops; i++)
		if (!strcmp(opt.ops[i], op))
			return true;
	return false;
}

static uint64_t stream_seq(natsMsg *m)
{
	return nn_msg_seq(m, NULL);
}

/* when the stream stored m, in ns; 0 if it can't be told */
static int64_t stored_ns(natsMsg *m)
{
	int64_t ns;

	nn_msg_seq(m, &ns);
	return ns;
}

/* the subject token of a record's op: open, read, ..., opN, or gap */
static void op_token(const struct nj_record *r, char *name, size_t size)
{
	const char *n = r->gap ? "GAP" : nf_op_name(r->rec.op);
	size_t i;

	if (!n) {
		snprintf(name, size, "op%u", r->rec.op);
		return;
	}
	for (i = 0; n[i] && i < size - 1; i++)
		name[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] - 'A' + 'a' : n[i]);
	name[i] = '\0';
}

/*
 * One record or gap of a message on the subject of fs, nd and op (NULL
 * in a batch): parsed into *r and agreeing with the subject, its fsid
 * and node those of the subject, its op the subject's op.  Whoever may
 * publish on one node's subjects can then never speak for another
 * node, here or in the order kept for each mount.  0, or -1 with why.
 */
static int subject_record(const char *data, size_t len, const char *fs, const char *nd,
			  const char *op, struct nj_record *r, char *why, size_t size)
{
	char err[160];
	char name[16];

	if (nj_parse(data, len, r, err, sizeof(err))) {
		snprintf(why, size, "not a schema %d record: %s", NF_JSON_SCHEMA, err);
		return -1;
	}
	op_token(r, name, sizeof(name));
	if (!r->fsid || !r->node || strcmp(r->fsid, fs) || strcmp(r->node, nd) ||
	    (op && strcmp(op, name))) {
		snprintf(why, size, "its fsid, node or op differ from its subject's");
		nj_free(r);
		return -1;
	}
	return 0;
}

/* one record or gap of a message: false if not printed (filtered or malformed) */
static bool print_one(const char *data, size_t len, const char *fs, const char *nd,
		      const char *op, natsMsg *m)
{
	struct nj_record r;
	struct nf_origin o;
	char why[224];
	char name[16];

	if (subject_record(data, len, fs, nd, op, &r, why, sizeof(why))) {
		fprintf(stderr, PROG ": ignoring stream message %" PRIu64 ": %s\n", stream_seq(m), why);
		return false;
	}
	/* a batched message: filter each record by its op */
	op_token(&r, name, sizeof(name));
	if (!op && !wanted_op(name)) {
		nj_free(&r);
		return false;
	}
	o = (struct nf_origin){ r.fsid, r.node, r.rid };
	if (opt.json) {
		if (r.gap)
			nf_json_gap(stdout, r.after_seq, r.seq, &o);
		else
			nf_json_record(stdout, &r.rec, r.path, r.path_len, &o);
	} else {
		fputs("fsid=", stdout);
		nf_text_str(stdout, r.fsid, strlen(r.fsid));
		fputs(" node=", stdout);
		nf_text_str(stdout, r.node, strlen(r.node));
		putchar(' ');
		if (r.gap)
			nf_text_gap(stdout, r.after_seq, r.seq);
		else
			nf_text_record(stdout, &r.rec, r.path, r.path_len);
	}
	nj_free(&r);
	return true;
}

/*
 * Print one message: one record, or with --batch on the forwarder
 * several as JSON lines; the number of lines printed.
 */
static uint64_t print_msg(natsMsg *m)
{
	const char *subj = natsMsg_GetSubject(m);
	const char *data = natsMsg_GetData(m);
	size_t len = natsMsg_GetDataLength(m);
	char fs[NN_TOKEN_MAX + 1];
	char nd[NN_TOKEN_MAX + 1];
	char op[NN_TOKEN_MAX + 1];
	const char *nl;
	uint64_t printed_here = 0;

	if (!subj || !split_subject(subj, fs, nd, op, sizeof(fs))) {
		fprintf(stderr, PROG ": ignoring stream message %" PRIu64 ": not a scoutfs.notify.<fsid>.<node>.<op> subject\n",
			stream_seq(m));
		return 0;
	}
	if (strcmp(op, "batch"))
		return wanted_op(op) && print_one(data, len, fs, nd, op, m) ? 1 : 0;
	while (len > 0) {
		nl = memchr(data, '\n', len);
		if (print_one(data, nl ? (size_t)(nl - data) : len, fs, nd, NULL, m))
			printed_here++;
		if (!nl)
			break;
		len -= nl - data + 1;
		data = nl + 1;
	}
	return printed_here;
}

/*
 * Each mount's records in seq order.  The forwarder publishes a mount's
 * records in order, but when a NATS server fails while they are in
 * flight, the stream's new leader can store later records before the
 * ones the forwarder publishes again: a message that starts past the
 * next seq of its mount (fsid, node, rid) waits, for at most
 * --reorder-wait, for the messages before it.  What never comes is
 * printed as a gap; what comes after that is printed late, never
 * dropped.
 *
 * JetStream delivers at least once: a message whose acknowledgement
 * was lost (a server failing, the consumer's leader moving) comes
 * again after the consumer's ack wait.  A mount's seqs say what was
 * printed, so a message that covers only seqs printed already, not
 * ones printed as lost, is a duplicate: acknowledged again, not
 * printed.
 */
struct held {
	natsMsg *m;
	uint64_t start;		/* the first seq it covers */
	uint64_t next;		/* the seq after it */
	uint64_t since_ms;
	uint64_t progress_ms;	/* when the server last heard it is in hand */
};

/* seqs [start, next) printed as lost */
struct lost {
	uint64_t start;
	uint64_t next;
};

struct origin {
	char key[3 * (NN_TOKEN_MAX + 1) + 20];
	char fsid[NN_TOKEN_MAX + 1];
	char node[NN_TOKEN_MAX + 1];
	char rid[NN_TOKEN_MAX + 1];
	uint64_t next;		/* the next seq to print */
	bool started;		/* next is known */
	uint64_t first_ms;	/* when its first message came */
	struct held *held;	/* sorted by start */
	size_t nheld;
	size_t cap;
	struct lost *lost;	/* sorted, disjoint */
	size_t nlost;
	size_t lost_cap;
};

static struct origin *origins;
static size_t norigins;
static uint64_t duplicates;	/* delivered again, not printed again */
#define START_WAIT_MS	3000
static natsMsg **done;		/* printed this round: to acknowledge */
static size_t ndone;
static size_t done_cap;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The seqs a message covers and whose they are, from its first and last
 * records, each agreeing with the message's subject (see
 * subject_record()); false if it's not records of its subject's mount,
 * which then leaves every mount's order untouched.
 */
static bool msg_range(natsMsg *m, struct origin *o, uint64_t *start, uint64_t *next)
{
	const char *subj = natsMsg_GetSubject(m);
	const char *data = natsMsg_GetData(m);
	size_t len = natsMsg_GetDataLength(m);
	const char *nl = memchr(data, '\n', len);
	const char *lastl = data;
	char fs[NN_TOKEN_MAX + 1];
	char nd[NN_TOKEN_MAX + 1];
	char op[NN_TOKEN_MAX + 1];
	const char *rop;
	struct nj_record r;
	char why[224];
	size_t i;

	if (!subj || !split_subject(subj, fs, nd, op, sizeof(fs)))
		return false;
	rop = strcmp(op, "batch") ? op : NULL;
	for (i = len; i > 0; i--) {
		if (data[i - 1] == '\n') {
			lastl = data + i;
			break;
		}
	}
	if (subject_record(data, nl ? (size_t)(nl - data) : len, fs, nd, rop, &r, why, sizeof(why)))
		return false;
	if (!r.rid || strlen(r.rid) > NN_TOKEN_MAX) {
		nj_free(&r);
		return false;
	}
	strcpy(o->fsid, r.fsid);
	strcpy(o->node, r.node);
	strcpy(o->rid, r.rid);
	snprintf(o->key, sizeof(o->key), "%s.%s.%s", r.fsid, r.node, r.rid);
	*start = r.gap ? r.after_seq + 1 : r.seq;
	if (lastl != data) {
		nj_free(&r);
		if (subject_record(lastl, len - (size_t)(lastl - data), fs, nd, rop, &r, why,
				   sizeof(why)))
			return false;
	}
	*next = r.gap ? r.seq : r.seq + 1;
	nj_free(&r);
	return *next > *start || *next == *start;
}

static void printed_msg(natsMsg *m)
{
	natsMsg **n;

	if (ndone == done_cap) {
		done_cap = done_cap ? done_cap * 2 : 512;
		n = realloc(done, done_cap * sizeof(*done));
		if (!n) {
			natsMsg_Destroy(m);
			return;
		}
		done = n;
	}
	done[ndone++] = m;
}

/* a message came again: said once on stderr, counted at exit */
static void delivered_again(natsMsg *m)
{
	if (!duplicates++)
		fprintf(stderr, PROG ": stream message %" PRIu64 " delivered again (an acknowledgement lost or late): not printed again\n",
			stream_seq(m));
}

/* is all of [start, next) printed already, and none of it as lost? */
static bool printed_already(const struct origin *o, uint64_t start, uint64_t next)
{
	size_t i;

	if (!o->started || next > o->next)
		return false;
	for (i = 0; i < o->nlost; i++)
		if (o->lost[i].start < next && start < o->lost[i].next)
			return false;
	return true;
}

/*
 * [start, next) printed as lost: kept so that those records, if they
 * come after all, are printed late rather than taken for duplicates.
 * The list only grows at its end (o->next only grows); bounded, the
 * oldest go first.
 */
#define LOST_MAX	4096
static void add_lost(struct origin *o, uint64_t start, uint64_t next)
{
	struct lost *n;

	if (o->nlost == LOST_MAX) {
		memmove(&o->lost[0], &o->lost[1], (o->nlost - 1) * sizeof(*n));
		o->nlost--;
	}
	if (o->nlost == o->lost_cap) {
		n = realloc(o->lost, (o->lost_cap ? o->lost_cap * 2 : 8) * sizeof(*n));
		if (!n)
			return;
		o->lost = n;
		o->lost_cap = o->lost_cap ? o->lost_cap * 2 : 8;
	}
	o->lost[o->nlost++] = (struct lost){ start, next };
}

/* [start, next) came after all and is printed late: no longer lost */
static void found_late(struct origin *o, uint64_t start, uint64_t next)
{
	struct lost *l;
	size_t i = 0;

	while (i < o->nlost) {
		l = &o->lost[i];
		if (l->next <= start || next <= l->start) {
			i++;
		} else if (l->start < start && next < l->next) {
			/* the middle of it: in two (or, without memory, whole) */
			if (o->nlost == o->lost_cap) {
				struct lost *n = realloc(o->lost, o->lost_cap * 2 * sizeof(*n));

				if (!n)
					return;
				o->lost = n;
				o->lost_cap *= 2;
				l = &o->lost[i];
			}
			memmove(&o->lost[i + 2], &o->lost[i + 1], (o->nlost - i - 1) * sizeof(*l));
			o->lost[i + 1] = (struct lost){ next, l->next };
			l->next = start;
			o->nlost++;
			i += 2;
		} else if (l->start < start) {
			l->next = start;
			i++;
		} else if (next < l->next) {
			l->start = next;
			i++;
		} else {
			memmove(&o->lost[i], &o->lost[i + 1], (o->nlost - i - 1) * sizeof(*l));
			o->nlost--;
		}
	}
}

/* print what waited and can go now */
static void release(struct origin *o, bool force)
{
	struct held *h;

	/*
	 * A mount's first messages wait a little (START_WAIT_MS, at most
	 * --reorder-wait) for earlier ones, e.g. those a durable consumer's
	 * last run handed back, before its next seq is taken.
	 */
	if (!o->started) {
		if (!o->nheld || (!force && now_ms() - o->first_ms <
				  (opt.reorder_ms < START_WAIT_MS ? opt.reorder_ms : START_WAIT_MS)))
			return;
		o->started = true;
		o->next = o->held[0].start;
	}

	while (o->nheld && !(opt.count && printed >= opt.count)) {
		h = &o->held[0];
		if (h->start > o->next) {
			if (!force && now_ms() - h->since_ms < opt.reorder_ms)
				break;
			/* it never came: a gap, as the consumer sees it */
			fprintf(stderr, PROG ": records seq %" PRIu64 " to %" PRIu64 " of %s are not in the stream after %" PRIu64 " ms: printing them as lost\n",
				o->next, h->start - 1, o->key, opt.reorder_ms);
			if (opt.json) {
				struct nf_origin no = { o->fsid, o->node, o->rid };

				nf_json_gap(stdout, o->next - 1, h->start, &no);
			} else {
				fputs("fsid=", stdout);
				nf_text_str(stdout, o->fsid, strlen(o->fsid));
				fputs(" node=", stdout);
				nf_text_str(stdout, o->node, strlen(o->node));
				putchar(' ');
				nf_text_gap(stdout, o->next - 1, h->start);
			}
			printed++;
			add_lost(o, o->next, h->start);
			o->next = h->start;
		}
		if (opt.count && printed >= opt.count)
			break;
		if (printed_already(o, h->start, h->next)) {
			delivered_again(h->m);
		} else {
			printed += print_msg(h->m);
			found_late(o, h->start, h->next);
		}
		if (h->next > o->next)
			o->next = h->next;
		printed_msg(h->m);
		memmove(&o->held[0], &o->held[1], (o->nheld - 1) * sizeof(*h));
		o->nheld--;
	}
}

/* one fetched message: printed now, or held for the ones before it */
static void take_msg(natsMsg *m)
{
	struct origin tmp;
	struct origin *o = NULL;
	struct held *h;
	uint64_t start;
	uint64_t next;
	size_t i;

	if (!msg_range(m, &tmp, &start, &next)) {
		printed += print_msg(m);	/* reports it */
		printed_msg(m);
		return;
	}
	for (i = 0; i < norigins; i++)
		if (!strcmp(origins[i].key, tmp.key))
			o = &origins[i];
	if (!o) {
		o = realloc(origins, (norigins + 1) * sizeof(*origins));
		if (!o) {
			printed += print_msg(m);
			printed_msg(m);
			return;
		}
		origins = o;
		o = &origins[norigins++];
		*o = tmp;
		o->held = NULL;
		o->nheld = o->cap = 0;
		o->lost = NULL;
		o->nlost = o->lost_cap = 0;
		o->next = start;
		o->started = false;
		o->first_ms = now_ms();
	}
	if (printed_already(o, start, next)) {
		/* delivered again: acknowledged again, not printed */
		delivered_again(m);
		printed_msg(m);
		return;
	}
	if (!o->started || start > o->next) {
		for (i = 0; i < o->nheld; i++) {
			if (o->held[i].start == start && o->held[i].next == next) {
				/* delivered again while held: the held one answers for both */
				delivered_again(m);
				natsMsg_Destroy(m);
				return;
			}
		}
		if (o->nheld == o->cap) {
			o->cap = o->cap ? o->cap * 2 : 64;
			h = realloc(o->held, o->cap * sizeof(*h));
			if (!h) {
				printed += print_msg(m);
				printed_msg(m);
				return;
			}
			o->held = h;
		}
		for (i = o->nheld; i > 0 && o->held[i - 1].start > start; i--)
			o->held[i] = o->held[i - 1];
		o->held[i] = (struct held){ m, start, next, now_ms(), now_ms() };
		o->nheld++;
		release(o, false);
		return;
	}
	/* in order, or late (after it was printed as lost): printed now */
	printed += print_msg(m);
	found_late(o, start, next);
	printed_msg(m);
	if (next > o->next)
		o->next = next;
	release(o, false);
}

/*
 * How long a pull waits, from what it would like (see the fetch loop):
 * short enough for a held message's --reorder-wait to end on time and
 * for a durable's held messages to be reported in progress in time.
 */
static int64_t fetch_wait_ms(uint64_t want)
{
	bool held = false;
	size_t i;

	for (i = 0; i < norigins; i++)
		if (origins[i].nheld)
			held = true;
	if (held && want > opt.reorder_ms / 2)
		want = opt.reorder_ms / 2;
	if (opt.durable && want > opt.ack_wait_ms / 4)
		want = opt.ack_wait_ms / 4;
	return want < 100 ? 100 : (int64_t)want;
}

/* a signal to stop has come */
static bool stop_now(const sigset_t *sigs)
{
	struct timespec zero = { 0, 0 };

	return sigtimedwait(sigs, NULL, &zero) > 0;
}

/*
 * The reply subjects of the latest acknowledgements.  An ack the
 * server took but did not replicate before it failed, or one lost on a
 * connection to it, makes the message come again an ack wait later:
 * to this run, which knows it printed it, or to the next, which does
 * not.  So at exit the acks of the last two ack waits are sent again
 * (an ack of a message acknowledged already changes nothing).
 */
#define RECENT_MAX	65536
struct recent {
	char *reply;
	uint64_t ms;
};
static struct recent *recent;
static size_t recent_next;	/* the slot the next one takes */

static void remember_ack(natsMsg *m)
{
	const char *reply = natsMsg_GetReply(m);
	struct recent *r;

	if (!reply)
		return;
	if (!recent) {
		recent = calloc(RECENT_MAX, sizeof(*recent));
		if (!recent)
			return;
	}
	r = &recent[recent_next];
	free(r->reply);
	r->reply = strdup(reply);
	r->ms = now_ms();
	recent_next = (recent_next + 1) % RECENT_MAX;
}

/* the acks of the last two ack waits again, flushed; false if not out */
static bool reack_recent(natsConnection *nc)
{
	uint64_t since = now_ms() - 2 * opt.ack_wait_ms - 5000;
	size_t i;

	for (i = 0; recent && i < RECENT_MAX; i++) {
		if (recent[i].reply && recent[i].ms >= since)
			natsConnection_PublishString(nc, recent[i].reply, "+ACK");
		free(recent[i].reply);
	}
	free(recent);
	recent = NULL;
	return natsConnection_FlushTimeout(nc, 5000) == NATS_OK;
}

/*
 * What is held for its order is not acknowledged until it is printed:
 * tell the server it is in hand, so that it does not deliver it again
 * an ack wait later.
 */
static void keep_held(void)
{
	uint64_t now = now_ms();
	struct held *h;
	size_t i;
	size_t k;

	for (i = 0; i < norigins; i++) {
		for (k = 0; k < origins[i].nheld; k++) {
			h = &origins[i].held[k];
			if (now - h->progress_ms >= opt.ack_wait_ms / 3) {
				natsMsg_InProgress(h->m, NULL);
				h->progress_ms = now;
			}
		}
	}
}

/* printed and flushed: now the server may forget them */
static void flush_and_ack(bool durable_, int *ret)
{
	size_t i;
	natsStatus s;
	jsErrCode jerr = 0;

	if (fflush(stdout) == EOF) {
		*ret = NN_EXIT_TRANSIENT;
		return;
	}
	for (i = 0; i < ndone; i++) {
		if (durable_) {
			s = i + 1 == ndone ? natsMsg_AckSync(done[i], NULL, &jerr) :
					     natsMsg_Ack(done[i], NULL);
			if (s != NATS_OK)
				fprintf(stderr, PROG ": ack: %s (records may be printed again)\n",
					natsStatus_GetText(s));
			remember_ack(done[i]);
		}
		natsMsg_Destroy(done[i]);
	}
	ndone = 0;
}

/* ---- the command line ---- */

enum {
	OPT_STREAM = 2001,
	OPT_ALL,
	OPT_SINCE,
	OPT_FROM_SEQ,
	OPT_DURABLE,
	OPT_FSID,
	OPT_NODE,
	OPT_OP,
	OPT_REORDER_WAIT,
	OPT_ACK_WAIT,
};

static const struct option long_opts[] = {
	NN_LONG_OPTS,
	{ "stream", required_argument, NULL, OPT_STREAM },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "from-seq", required_argument, NULL, OPT_FROM_SEQ },
	{ "durable", required_argument, NULL, OPT_DURABLE },
	{ "fsid", required_argument, NULL, OPT_FSID },
	{ "node", required_argument, NULL, OPT_NODE },
	{ "op", required_argument, NULL, OPT_OP },
	{ "reorder-wait", required_argument, NULL, OPT_REORDER_WAIT },
	{ "ack-wait", required_argument, NULL, OPT_ACK_WAIT },
	{ "json", no_argument, NULL, 'j' },
	{ "count", required_argument, NULL, 'n' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* a positive number for option name (--count, --from-seq); 0 or -1 (printed) */
static int take_positive(const char *arg, const char *name, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(arg, &end, 10);
	if (errno || *end || !*arg || arg[0] == '-' || *v == 0) {
		fprintf(stderr, PROG ": %s needs a positive number, not '%s'\n", name, arg);
		return -1;
	}
	return 0;
}

/* a subject token for option name (--stream, --fsid, --node); 0 or -1 (printed) */
static int take_token(const char *arg, const char *name, const char **v)
{
	if (!nn_token_ok(arg)) {
		fprintf(stderr, PROG ": bad %s '%s'\n", name, arg);
		return -1;
	}
	*v = arg;
	return 0;
}

/* --op LIST: the ops printed (a later --op replaces an earlier); 0 or -1 (printed) */
static int take_ops(const char *arg)
{
	char *tok;
	char *save;

	free(opt.opsbuf);
	opt.opsbuf = strdup(arg);
	opt.nops = 0;
	for (tok = strtok_r(opt.opsbuf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!op_ok(tok) || opt.nops == OPS_MAX) {
			fprintf(stderr, PROG ": --op takes open, read, attach, mmap or opN, not '%s'\n",
				tok);
			return -1;
		}
		opt.ops[opt.nops++] = tok;
	}
	if (!opt.nops) {
		fprintf(stderr, PROG ": --op needs at least one op\n");
		return -1;
	}
	return 0;
}

/* --all, --since, --from-seq: where a new consumer starts; 0 or -1 (printed) */
static int take_start(int c, const char *arg)
{
	opt.starts++;
	if (c == OPT_ALL) {
		opt.all = true;
		return 0;
	}
	if (c == OPT_FROM_SEQ)
		return take_positive(arg, "--from-seq", &opt.from_seq);
	opt.since = parse_since(arg);
	if (opt.since < 0) {
		fprintf(stderr, PROG ": --since needs an RFC 3339 time (2026-11-26T08:00:00Z) or a duration (10m), not '%s'\n",
			arg);
		return -1;
	}
	return 0;
}

/* --reorder-wait, --ack-wait; 0 or -1 (printed) */
static int take_wait(int c, const char *arg)
{
	if (c == OPT_REORDER_WAIT) {
		if (parse_ms(arg, &opt.reorder_ms, 0)) {
			fprintf(stderr, PROG ": --reorder-wait needs a duration (10s, 500ms), not '%s'\n",
				arg);
			return -1;
		}
		return 0;
	}
	if (parse_ms(arg, &opt.ack_wait_ms, 1000)) {
		fprintf(stderr, PROG ": --ack-wait needs a duration of at least 1s (30s, 1500ms), not '%s'\n",
			arg);
		return -1;
	}
	return 0;
}

/* one option of ours (not NATS's, not --help) into opt; 0 or -1 (printed) */
static int take_opt(int c, const char *arg)
{
	switch (c) {
	case OPT_STREAM:
		return take_token(arg, "--stream", &opt.stream);
	case OPT_ALL:
	case OPT_SINCE:
	case OPT_FROM_SEQ:
		return take_start(c, arg);
	case OPT_DURABLE:
		if (!nn_token_ok(arg)) {
			fprintf(stderr, PROG ": --durable must be letters, digits, '-' or '_', not '%s'\n",
				arg);
			return -1;
		}
		opt.durable = arg;
		return 0;
	case OPT_FSID:
		return take_token(arg, "--fsid", &opt.f_fsid);
	case OPT_NODE:
		return take_token(arg, "--node", &opt.f_node);
	case OPT_OP:
		return take_ops(arg);
	case OPT_REORDER_WAIT:
	case OPT_ACK_WAIT:
		return take_wait(c, arg);
	case 'j':
		opt.json = true;
		return 0;
	case 'n':
		return take_positive(arg, "--count", &opt.count);
	default:
		usage(stderr);
		return -1;
	}
}

/*
 * The command line into opt, each option checked as it comes, then
 * what they mean together: -1 to go on, or the exit status (0 after
 * --help).
 */
static int parse_opts(int argc, char **argv)
{
	int ret;

	ret = nn_parse_opts(&opt.nopts, argc, argv, "s:jn:h", long_opts, take_opt, usage, PROG);
	if (ret >= 0)
		return ret;
	if (optind != argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return NN_EXIT_USAGE;
	}
	if (opt.starts > 1) {
		fprintf(stderr, PROG ": --all, --since and --from-seq exclude each other\n");
		return NN_EXIT_USAGE;
	}
	if (nn_check(&opt.nopts, PROG))
		return NN_EXIT_USAGE;
	return -1;
}

/* ---- the consumer ---- */

/* what main() sets up, and tears down at the end */
struct run {
	sigset_t sigs;
	natsConnection *nc;
	jsCtx *js;
	jsConsumerInfo *ci;
	natsSubscription *sub;
	char filter[256];
};

/*
 * A cluster that just lost a server can take a while to answer: look
 * a durable up for up to 30 s while it says so (or till a signal).
 */
static natsStatus lookup_durable(struct run *r)
{
	jsErrCode jerr = 0;
	natsStatus s = NATS_OK;
	int i;

	for (i = 0; i < 30; i++) {
		jerr = 0;
		s = js_GetConsumerInfo(&r->ci, r->js, opt.stream, opt.durable, NULL, &jerr);
		if ((s != NATS_TIMEOUT && jerr != JSClusterNotAvailErr) || stop_now(&r->sigs))
			break;
		nats_Sleep(1000);
	}
	return s;
}

/* a durable that exists keeps its filter and start: say what is not as asked */
static void existing_durable(const struct run *r)
{
	const char *filter = r->ci->Config->FilterSubject;

	if (!filter || strcmp(filter, r->filter))
		fprintf(stderr, PROG ": durable %s exists with filter %s; --fsid and --node can't change it (--op still applies)\n",
			opt.durable, filter ? filter : "(none)");
	if (opt.starts)
		fprintf(stderr, PROG ": durable %s exists: carrying on where it stopped, not from the start given\n",
			opt.durable);
}

/*
 * libnats (3.4.1, and its main branch still) sends a start time's
 * fraction without its leading zeros (nats_EncodeTimeUTC() prints the
 * nanoseconds with ".%" PRId64), so 08:00:00.05 reaches the server as
 * 08:00:00.5 and what the stream stored in between is never delivered:
 * a --since with a fraction under 0.1 s, which the tests met one run in
 * five.  Such a consumer starts at the whole second instead, which
 * encodes exactly, and take_list() skips what was stored before --since
 * (up to the first message stored at or after it, the server's own
 * rule for a start time).
 */
static int64_t since_asked(int64_t since)
{
	int64_t frac = since % 1000000000LL;

	if (frac <= 0 || frac >= 100000000LL)
		return since;
	skip_before_ns = since;
	return since - frac;
}

/* a new consumer's configuration, from the options */
static void consumer_config(jsConsumerConfig *cc, const char *filter)
{
	jsConsumerConfig_Init(cc);
	cc->Durable = opt.durable;
	cc->FilterSubject = filter;
	cc->AckPolicy = opt.durable ? js_AckExplicit : js_AckNone;
	cc->AckWait = (int64_t)opt.ack_wait_ms * 1000000LL;
	cc->MaxAckPending = 10000;
	if (!opt.durable)
		cc->InactiveThreshold = 60LL * 1000000000LL;
	if (opt.all) {
		cc->DeliverPolicy = js_DeliverAll;
	} else if (opt.since >= 0) {
		cc->DeliverPolicy = js_DeliverByStartTime;
		cc->OptStartTime = since_asked(opt.since);
	} else if (opt.from_seq) {
		cc->DeliverPolicy = js_DeliverByStartSequence;
		cc->OptStartSeq = opt.from_seq;
	} else {
		cc->DeliverPolicy = js_DeliverNew;
	}
}

/* make the consumer, retrying as lookup_durable(); 0 or the exit status (printed) */
static int add_consumer(struct run *r)
{
	jsConsumerConfig cc;
	jsErrCode jerr = 0;
	const char *text;
	natsStatus s = NATS_OK;
	int i;

	consumer_config(&cc, r->filter);
	for (i = 0; i < 30; i++) {
		jerr = 0;
		s = js_AddConsumer(&r->ci, r->js, opt.stream, &cc, NULL, &jerr);
		if ((s != NATS_TIMEOUT && jerr != JSClusterNotAvailErr) || stop_now(&r->sigs))
			break;
		nats_Sleep(1000);
	}
	if (s == NATS_OK)
		return 0;
	text = nats_GetLastError(NULL);
	fprintf(stderr, PROG ": cannot read stream %s: %s%s\n", opt.stream,
		text ? text : natsStatus_GetText(s),
		jerr == JSStreamNotFoundErr ? " (no forwarder has created it yet?)" : "");
	return s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr ||
	       s == NATS_NOT_PERMITTED ? NN_EXIT_PERMANENT : NN_EXIT_TRANSIENT;
}

/*
 * A durable that exists carries on; otherwise make the consumer.  Then
 * pull from it.  0 or the exit status (printed).
 */
static int bind_consumer(struct run *r)
{
	jsSubOptions so;
	jsErrCode jerr = 0;
	const char *text;
	natsStatus s;
	int ret;

	if (opt.durable && lookup_durable(r) == NATS_OK) {
		existing_durable(r);
	} else {
		ret = add_consumer(r);
		if (ret)
			return ret;
	}
	/* an existing durable keeps the ack wait it was made with */
	if (opt.durable && r->ci->Config && r->ci->Config->AckWait > 0)
		opt.ack_wait_ms = (uint64_t)r->ci->Config->AckWait / 1000000;
	jsSubOptions_Init(&so);
	so.Stream = opt.stream;
	so.Consumer = r->ci->Name;
	s = js_PullSubscribe(&r->sub, r->js, r->filter, opt.durable, NULL, &so, &jerr);
	if (s != NATS_OK) {
		text = nats_GetLastError(NULL);
		fprintf(stderr, PROG ": cannot bind to consumer %s of stream %s: %s\n", r->ci->Name,
			opt.stream, text ? text : natsStatus_GetText(s));
		return NN_EXIT_TRANSIENT;
	}
	return 0;
}

/* signals, the connection, JetStream, the consumer: 0 or the exit status (printed) */
static int setup(struct run *r)
{
	jsOptions jso;
	natsStatus s;
	int ret;

	nn_block_signals(&r->sigs, SIGHUP);
	opt.nopts.name = PROG;
	ret = nn_connect(&r->nc, &opt.nopts, true, NULL, NULL, NULL, PROG);
	if (ret)
		return ret;
	jsOptions_Init(&jso);
	jso.Wait = 10000;
	s = natsConnection_JetStream(&r->js, r->nc, &jso);
	if (s != NATS_OK) {
		fprintf(stderr, PROG ": JetStream: %s\n", natsStatus_GetText(s));
		return NN_EXIT_TRANSIENT;
	}
	snprintf(r->filter, sizeof(r->filter), NN_SUBJECT_PREFIX ".%s.%s.*",
		 opt.f_fsid ? opt.f_fsid : "*", opt.f_node ? opt.f_node : "*");
	return bind_consumer(r);
}

/* ---- the fetch loop ---- */

/* the fetch loop's state from one pull to the next */
struct loop {
	uint64_t fetch_ms;	/* how long the next pull would like to wait */
	int fetch_errors;	/* failed pulls in a row */
	bool stop;		/* --count reached */
	int ret;
};

/*
 * A pull that failed: reconnecting (the library does it), or a cluster
 * moving the consumer to another server: try again, for a minute of
 * failures in a row.  False when the loop ends.
 */
static bool fetch_failed(struct run *r, struct loop *l, natsStatus s)
{
	struct timespec d = { 0, 200 * 1000000L };

	if (natsConnection_Status(r->nc) == NATS_CONN_STATUS_CONNECTED &&
	    ++l->fetch_errors % 25 == 1)
		fprintf(stderr, PROG ": fetch: %s%s\n", natsStatus_GetText(s),
			l->fetch_errors > 1 ? " (still)" : ", trying again");
	if (l->fetch_errors > 300) {
		l->ret = NN_EXIT_TRANSIENT;
		return false;
	}
	nanosleep(&d, NULL);
	return true;
}

/* the messages a pull brought, in order, until --count is reached */
static void take_list(natsMsgList *list, struct loop *l)
{
	int i;

	for (i = 0; i < list->Count; i++) {
		if (skip_before_ns) {
			if (stored_ns(list->Msgs[i]) < skip_before_ns) {
				printed_msg(list->Msgs[i]);	/* acknowledged, not printed */
				list->Msgs[i] = NULL;
				continue;
			}
			skip_before_ns = 0;
		}
		take_msg(list->Msgs[i]);
		list->Msgs[i] = NULL;	/* printed_msg() or held owns it */
		/* a batched message is printed whole */
		if (opt.count && printed >= opt.count) {
			l->stop = true;
			break;
		}
	}
	/* not printed: back to the server, as the held ones at the end */
	for (; i < list->Count; i++)
		if (list->Msgs[i] && opt.durable)
			natsMsg_NakWithDelay(list->Msgs[i], 2000, NULL);
	natsMsgList_Destroy(list);
}

/* one pull and what it brought; false when the loop ends */
static bool fetch_round(struct run *r, struct loop *l)
{
	natsMsgList list;
	jsErrCode jerr = 0;
	natsStatus s;
	bool none;
	int want = FETCH_MAX;
	size_t i;

	if (stop_now(&r->sigs))
		return false;
	/* never take more than is left to print: a durable's rest stays unacked */
	if (opt.count && opt.count - printed < (uint64_t)want)
		want = (int)(opt.count - printed);
	memset(&list, 0, sizeof(list));
	s = nn_fetch(&list, r->sub, want, fetch_wait_ms(l->fetch_ms), &jerr, PROG);
	none = s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0);
	/*
	 * Nothing came: wait longer in the next pull (to 4 s).  A pull
	 * that expires before a busy server gets to it brings nothing,
	 * however much is waiting; seen on a loaded host with 500 ms
	 * pulls, none of which ever delivered.
	 */
	if (none)
		l->fetch_ms = l->fetch_ms * 2 > 4000 ? 4000 : l->fetch_ms * 2;
	else if (s == NATS_OK)
		l->fetch_ms = 500;
	/* what waited longer than --reorder-wait goes out */
	for (i = 0; i < norigins; i++)
		release(&origins[i], false);
	if (opt.durable)
		keep_held();
	if (none) {
		flush_and_ack(opt.durable, &l->ret);
		return !(l->ret || (opt.count && printed >= opt.count));
	}
	if (s != NATS_OK)
		return fetch_failed(r, l, s);
	l->fetch_errors = 0;
	take_list(&list, l);
	flush_and_ack(opt.durable, &l->ret);
	return !l->ret;
}

/*
 * What still waits goes back to the server for the next run, a little
 * later than what it waits for (which the server has not delivered
 * yet), so that the next run gets them in order: the server redelivers
 * what comes back at the same time in stream order.
 */
static void hand_back_held(void)
{
	size_t i;
	size_t k;

	for (i = 0; i < norigins; i++) {
		for (k = 0; k < origins[i].nheld; k++) {
			if (opt.durable)
				natsMsg_NakWithDelay(origins[i].held[k].m, 2000, NULL);
			natsMsg_Destroy(origins[i].held[k].m);
		}
		free(origins[i].held);
		free(origins[i].lost);
	}
	free(origins);
	free(done);
}

/* print until a signal, --count or an error; then hand back and say what was odd */
static int consume(struct run *r)
{
	struct loop l = { .fetch_ms = 500 };

	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	signal(SIGPIPE, SIG_DFL);
	while (!l.stop && fetch_round(r, &l))
		;
	hand_back_held();
	if (duplicates)
		fprintf(stderr, PROG ": %" PRIu64 " messages delivered again (an acknowledgement lost) were not printed again\n",
			duplicates);
	if (r->nc && opt.durable && !reack_recent(r->nc))
		fprintf(stderr, PROG ": the last acknowledgements may not have reached NATS: the next run may print some records again\n");
	else if (r->nc)
		natsConnection_FlushTimeout(r->nc, 2000);	/* the naks out */
	return l.ret;
}

/* an ephemeral consumer is deleted; the rest is freed */
static void teardown(struct run *r)
{
	if (r->sub)
		natsSubscription_Destroy(r->sub);
	if (r->ci && !opt.durable)
		js_DeleteConsumer(r->js, opt.stream, r->ci->Name, NULL, NULL);
	jsConsumerInfo_Destroy(r->ci);
	jsCtx_Destroy(r->js);
	natsConnection_Destroy(r->nc);
	nn_free(&opt.nopts);
	free(opt.opsbuf);
	nats_Close();
}

int main(int argc, char **argv)
{
	struct run r = { .nc = NULL };
	int ret;

	ret = parse_opts(argc, argv);
	if (ret >= 0)
		return ret;
	ret = setup(&r);
	if (!ret)
		ret = consume(&r);
	teardown(&r);
	return ret;
}
