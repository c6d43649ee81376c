/*
 * scoutfs-notify-forward: publish every access record of a scoutfs
 * mount to a NATS JetStream stream, so that one durable, replayable
 * stream holds the records of every node of a cluster.
 *
 * It is a client of the node's scoutfs-notifyd (notify.sock) like any
 * other, asking for many records per message (notify-sock.c): the
 * daemon never blocks on it, and a forwarder that falls behind loses
 * records at the daemon, which shows as a seq gap.  So the forwarder
 * never blocks its reading of the socket either.  A reader
 * thread moves records from the socket into a bounded buffer and
 * nothing else; the main thread publishes them with asynchronous
 * JetStream publishes and removes them from the buffer once the stream
 * acknowledged them.  While NATS is slow or unreachable the buffer
 * fills; when it is full the newest records are dropped, as the
 * kernel's ring drops them, and the seq gap shows it.
 *
 * Each connection to the daemon starts with the ATTACH record of its
 * attachment, then the records it drained after we connected: a seq
 * jump after that ATTACH is the records it relayed before, which are
 * missing from the stream like any other.  An ATTACH the stream has
 * already (a connection to the same daemon again) is skipped.
 *
 * Every seq gap the forwarder sees (ring full, the daemon dropping for
 * it, its own full buffer, or the time it was not running) is published
 * as a GAP message with the exact count, before the record that ends
 * it, so nothing is lost silently.  Every message carries a
 * Nats-Msg-Id made of the fsid, the mount's rid and the seq, the same
 * whenever the record is published again, so the stream's duplicate
 * window stores it once however often a publish is retried (after an
 * error or a reconnect the forwarder publishes again everything not yet
 * acknowledged).  At start it reads the last message this node stored
 * for the filesystem: records of the same mount it already holds are
 * not published again, and the ones it missed are a gap.
 *
 * Payloads are notify-format.c's JSON records with fsid, node and rid;
 * subjects are scoutfs.notify.<fsid>.<node>.<op>.  A merged record (a
 * run of sequential reads, or identical opens, that the kernel counted
 * in one record) is published as it is, with its "calls".  See
 * scoutfs-notify-forward(8).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <linux/types.h>

#include "notify-format.h"
#include "notify-json.h"
#include "notify-nats.h"
#include "notify-path.h"
#include "notify-sock.h"

#define PROG			"scoutfs-notify-forward"
#define DEFAULT_RUN_DIR		"/run/scoutfs"
#define PUB_BATCH		64
#define MAX_BATCH		1000
#define ACK_WAIT_MS		5000

typedef nf_rec_t rec_t;

_Static_assert(sizeof(rec_t) == 64, "notify records are 64 bytes");

/* slot flags */
#define S_PLANNED	0x01	/* gap and skip decided */
#define S_GAP		0x02	/* a GAP message goes before the record */
#define S_SKIP		0x04	/* already in the stream: nothing to publish */
#define S_SENT		0x08	/* published at least once */
#define S_ACK_REC	0x10
#define S_ACK_GAP	0x20
#define S_BSTART	0x40	/* --batch: the first record of a message */
#define S_BPLANNED	0x80	/* --batch: in a message whose records are fixed */

struct slot {
	rec_t rec;
	uint64_t gap_after;
	uint32_t flags;
	uint32_t blen;		/* --batch, S_BSTART: records in the message */
};

/*
 * The buffer between the reader thread and the publisher: slots
 * [tail, head) hold records not yet acknowledged by the stream, those
 * from pub on are not yet published.  Indices only grow; a slot is
 * slots[i % cap].
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct slot *slots;
	uint64_t cap;
	uint64_t head;
	uint64_t pub;
	uint64_t tail;
	bool rewind;		/* publish again from tail */
	uint64_t tail_ms;	/* when tail last moved (or pub left it) */
	bool reader_done;	/* the reader thread ended */
	/* the last seq covered, to find gaps (publisher side) */
	uint64_t prev_seq;
	bool prev_known;
	char ack_err[160];	/* the last publish error not yet logged */
} q = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static struct {
	uint64_t received;	/* records read from the socket */
	uint64_t buffer_dropped;	/* records dropped because the buffer was full */
	uint64_t stored;	/* records the stream acknowledged */
	uint64_t gaps;		/* gap messages the stream acknowledged */
	uint64_t lost;		/* records those gaps account for */
	uint64_t duplicates;	/* acknowledged as already stored */
	uint64_t republished;	/* messages published again */
	uint64_t pub_errors;	/* failed publishes */
	uint64_t skipped;	/* records the stream had before we started */
	uint64_t disconnects;
	uint64_t reconnects;
	uint64_t daemon_sessions;
} st;

/* the command line, checked (parse_opts()) */
struct opts {
	struct nn_opts nopts;
	const char *mnt_path;
	const char *sock_path;
	const char *run_dir;
	const char *stream;
	char node[NN_TOKEN_MAX + 1];
	int64_t replicas;
	int64_t max_age_ns;
	int64_t max_bytes;
	int64_t dup_window_ns;
	int64_t max_inflight;
	int64_t drain_ms;
	uint64_t buffer;	/* records */
	bool paths;
	uint32_t batch_n;	/* records per message */
};

static struct opts opt = {
	.run_dir = DEFAULT_RUN_DIR,
	.stream = NN_DEFAULT_STREAM,
	.replicas = 1,
	.max_age_ns = 7LL * 24 * 3600 * 1000000000LL,
	.max_bytes = 10LL << 30,
	.dup_window_ns = 120LL * 1000000000LL,
	.max_inflight = 16384,
	.drain_ms = 5000,
	.buffer = 1048576,
	.paths = true,
	.batch_n = 1,
};
static char sock_buf[PATH_MAX];
static char fsid[NP_FSID_LEN];
static char rid[NP_RID_LEN];

static int mnt_fd = -1;
static struct np_cache *pcache;
static natsConnection *nc;
static jsCtx *js;
static volatile bool stopping;
static int exit_status;

#define logmsg(prio, ...) ns_log(PROG, prio, __VA_ARGS__)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [options] <mountpoint>\n"
		"\n"
		"Publish every access record scoutfs-notifyd relays for the scoutfs\n"
		"mount to a NATS JetStream stream, on scoutfs.notify.<fsid>.<node>.<op>,\n"
		"one JSON object per message, with gaps published as GAP messages.\n"
		"\n"
		NN_OPTS_HELP
		"      --node NAME        this node's name in subjects and records\n"
		"                         (default: the hostname, made a subject token)\n"
		"      --stream NAME      the stream (default " NN_DEFAULT_STREAM "); created\n"
		"                         when missing, with:\n"
		"      --replicas N       its replicas (default 1)\n"
		"      --max-age DUR      its age limit, e.g. 7d, 12h, 0 for none (default 7d)\n"
		"      --max-bytes SIZE   its size limit, e.g. 10G, 0 for none (default 10G)\n"
		"      --dup-window DUR   its duplicate window (default 2m)\n"
		"      --buffer N         records kept while NATS is slow or unreachable\n"
		"                         (default 1048576, 80 bytes each)\n"
		"      --max-inflight N   publishes awaiting acknowledgement (default 16384)\n"
		"      --batch N          up to N records per message, as JSON lines, on\n"
		"                         scoutfs.notify.<fsid>.<node>.batch (default 1:\n"
		"                         one record per message, on its op's subject)\n"
		"      --drain-timeout DUR  on SIGTERM, publish what is buffered for at\n"
		"                         most this long (default 5s)\n"
		"  -r, --run-dir DIR      scoutfs-notifyd's run directory (default " DEFAULT_RUN_DIR ")\n"
		"      --socket PATH      the daemon's socket instead of the mount's\n"
		"  -P, --no-paths         don't resolve inode numbers to paths\n"
		"  -h, --help             this text\n"
		"\n"
		"SIGTERM or SIGINT: publish what is buffered, then exit 0.\n"
		"SIGUSR1: log the counts.  See scoutfs-notify-forward(8).\n");
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* a duration: N[s|m|h|d] (seconds without a unit), in ns; -1 if bad */
static int64_t parse_dur(const char *s)
{
	char *end;
	unsigned long long v;
	int64_t mul = 1;

	errno = 0;
	if (!*s || *s == '-')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mul = 1;
	else if (!strcmp(end, "ms"))
		return v > (unsigned long long)INT64_MAX / 1000000 ? -1 : (int64_t)v * 1000000;
	else if (!strcmp(end, "m"))
		mul = 60;
	else if (!strcmp(end, "h"))
		mul = 3600;
	else if (!strcmp(end, "d"))
		mul = 86400;
	else
		return -1;
	if (v > (unsigned long long)INT64_MAX / 1000000000 / mul)
		return -1;
	return (int64_t)v * mul * 1000000000;
}

/* a size: N[K|M|G|T] (binary), -1 if bad */
static int64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	if (!*s || *s == '-')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (!*end)
		shift = 0;
	else if (!strcmp(end, "K"))
		shift = 10;
	else if (!strcmp(end, "M"))
		shift = 20;
	else if (!strcmp(end, "G"))
		shift = 30;
	else if (!strcmp(end, "T"))
		shift = 40;
	else
		return -1;
	if (v > ((unsigned long long)INT64_MAX >> shift))
		return -1;
	return (int64_t)(v << shift);
}

static int64_t parse_count(const char *s, int64_t min, int64_t max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	return v;
}

/* the hostname as a subject token: '.' and anything else odd become '_' */
static void default_node(void)
{
	char host[256] = "";
	size_t i;

	if (gethostname(host, sizeof(host) - 1) || !host[0])
		strcpy(host, "localhost");
	host[NN_TOKEN_MAX] = '\0';
	for (i = 0; host[i]; i++)
		if (!isalnum((unsigned char)host[i]) && host[i] != '-' && host[i] != '_')
			host[i] = '_';
	strcpy(opt.node, host);
}

/* tell systemd our state (ns_sd_notify()), saying when it could not be told */
static void sd_notify_msg(const char *msg)
{
	if (ns_sd_notify(msg))
		logmsg(LOG_WARNING, "can't notify systemd: %s", strerror(errno));
}

static void log_stats(void)
{
	uint64_t buffered;

	pthread_mutex_lock(&q.lock);
	buffered = q.head - q.tail;
	pthread_mutex_unlock(&q.lock);
	logmsg(LOG_INFO, "counts: received %" PRIu64 ", stored %" PRIu64 ", gap messages %" PRIu64
	       " (%" PRIu64 " records lost before the stream), buffer dropped %" PRIu64
	       ", buffered %" PRIu64 ", duplicates %" PRIu64 ", republished %" PRIu64
	       ", publish errors %" PRIu64 ", already stored %" PRIu64 ", NATS disconnects %" PRIu64
	       ", reconnects %" PRIu64 ", daemon connections %" PRIu64,
	       st.received, st.stored, st.gaps, st.lost, st.buffer_dropped, buffered,
	       st.duplicates, st.republished, st.pub_errors, st.skipped, st.disconnects,
	       st.reconnects, st.daemon_sessions);
}

/* ---- publishing ---- */

static void msg_id(char *buf, size_t size, uint64_t seq, bool gap)
{
	snprintf(buf, size, "%s.%s.%" PRIu64 "%s", fsid, rid, seq, gap ? ".gap" : "");
}

/* a batched message: its first and last record's seq */
static void batch_id(char *buf, size_t size, uint64_t first, uint64_t last)
{
	snprintf(buf, size, "%s.%s.%" PRIu64 "-%" PRIu64 ".batch", fsid, rid, first, last);
}

static void subject(char *buf, size_t size, const rec_t *r, bool gap)
{
	const char *name = gap ? "GAP" : nf_op_name(r->op);
	char op[16];
	size_t i;

	if (name) {
		for (i = 0; name[i] && i < sizeof(op) - 1; i++)
			op[i] = (char)tolower((unsigned char)name[i]);
		op[i] = '\0';
	} else {
		snprintf(op, sizeof(op), "op%u", r->op);
	}
	snprintf(buf, size, NN_SUBJECT_PREFIX ".%s.%s.%s", fsid, opt.node, op);
}

/* the index of the slot holding seq in [tail, head), or UINT64_MAX; locked */
static uint64_t find_slot(uint64_t seq)
{
	uint64_t lo = q.tail;
	uint64_t hi = q.head;
	uint64_t mid;
	uint64_t s;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		s = q.slots[mid % q.cap].rec.seq;
		if (s == seq)
			return mid;
		if (s < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return UINT64_MAX;
}

static bool slot_done(const struct slot *s)
{
	if (s->flags & S_SKIP)
		return true;
	return (s->flags & S_PLANNED) && (s->flags & S_ACK_REC) &&
	       (!(s->flags & S_GAP) || (s->flags & S_ACK_GAP));
}

/* locked: free acknowledged slots at the tail */
static void advance_tail(void)
{
	uint64_t t = q.tail;

	while (t < q.head && t < q.pub && slot_done(&q.slots[t % q.cap]))
		t++;
	if (t != q.tail) {
		q.tail = t;
		q.tail_ms = mono_ms();
		pthread_cond_broadcast(&q.cond);
	}
}

/*
 * Locked: the stream refused a publish (pae): the first error not yet
 * logged is kept for do_rewind() to log, and unless the slot's flag
 * says it was acknowledged after all, everything unacknowledged is
 * published again.
 */
static void ack_failed(const jsPubAckErr *pae, const struct slot *s, uint32_t flag)
{
	st.pub_errors++;
	if (!q.ack_err[0])
		snprintf(q.ack_err, sizeof(q.ack_err), "%s (%s)",
			 pae->ErrText ? pae->ErrText : "", natsStatus_GetText(pae->Err));
	if (s && !(s->flags & flag))
		q.rewind = true;
	pthread_cond_broadcast(&q.cond);
}

/* locked, --batch: every record (and gap) of the message at slot index i at once */
static void ack_batch(uint64_t i, struct slot *s, const jsPubAck *pa)
{
	struct slot *b;
	uint32_t n = s->blen;
	uint64_t k;

	if (pa && pa->Duplicate)
		st.duplicates++;
	for (k = i; k < i + n && k < q.head; k++) {
		b = &q.slots[k % q.cap];
		b->flags |= S_ACK_REC | S_ACK_GAP;
		if (b->flags & S_SKIP)
			continue;
		st.stored++;
		if (b->flags & S_GAP) {
			st.gaps++;
			st.lost += b->rec.seq - b->gap_after - 1;
		}
	}
	advance_tail();
}

/* locked: the record, or the gap before it, of slot s is in the stream */
static void ack_one(struct slot *s, bool gap, const jsPubAck *pa)
{
	s->flags |= gap ? S_ACK_GAP : S_ACK_REC;
	if (pa && pa->Duplicate)
		st.duplicates++;
	if (gap) {
		st.gaps++;
		st.lost += s->rec.seq - s->gap_after - 1;
	} else {
		st.stored++;
	}
	advance_tail();
}

/*
 * The stream's answer to a publish, found by its Nats-Msg-Id
 * (<fsid>.<rid>.<seq>[.gap], or a batch's <fsid>.<rid>.<first>-<last>.batch).
 */
static void on_ack(jsCtx *ctx, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	const char *id = NULL;
	const char *p;
	bool gap = false;
	uint64_t seq;
	uint64_t i;
	struct slot *s;
	uint32_t flag;

	(void)ctx;
	(void)closure;
	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !id)
		goto out;
	p = strchr(id, '.');
	p = p ? strchr(p + 1, '.') : NULL;
	if (!p)
		goto out;
	seq = strtoull(p + 1, NULL, 10);
	gap = strstr(p + 1, ".gap") != NULL;

	pthread_mutex_lock(&q.lock);
	i = find_slot(seq);
	s = i == UINT64_MAX ? NULL : &q.slots[i % q.cap];
	if (strstr(p + 1, ".batch")) {
		if (pae)
			ack_failed(pae, s, S_ACK_REC);
		else if (s && (s->flags & S_BSTART) && !(s->flags & S_ACK_REC))
			ack_batch(i, s, pa);
	} else {
		flag = gap ? S_ACK_GAP : S_ACK_REC;
		if (pae)
			ack_failed(pae, s, flag);
		else if (s && !(s->flags & flag))
			ack_one(s, gap, pa);
	}
	pthread_mutex_unlock(&q.lock);
out:
	natsMsg_Destroy(msg);
}

static void on_disconnected(natsConnection *c, void *closure)
{
	(void)c;
	(void)closure;
	pthread_mutex_lock(&q.lock);
	st.disconnects++;
	pthread_mutex_unlock(&q.lock);
}

/* acknowledgements of what was in flight are lost: publish it again */
static void on_reconnected(natsConnection *c, void *closure)
{
	(void)c;
	(void)closure;
	pthread_mutex_lock(&q.lock);
	st.reconnects++;
	q.rewind = true;
	pthread_cond_broadcast(&q.cond);
	pthread_mutex_unlock(&q.lock);
}

/*
 * Locked: published, connected, and no acknowledgement for ACK_WAIT_MS
 * (e.g. the stream's leader went away with them): publish again.
 */
static void check_stall(void)
{
	if (q.pub > q.tail && mono_ms() - q.tail_ms > ACK_WAIT_MS && !q.rewind &&
	    natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) {
		snprintf(q.ack_err, sizeof(q.ack_err), "no acknowledgement for %d s",
			 ACK_WAIT_MS / 1000);
		q.rewind = true;
	}
}

static bool published_any;
static FILE *enc;
static char *enc_buf;
static size_t enc_size;

/*
 * Publish one message; false when it could not be handed to the
 * library (then everything unacknowledged is published again).
 */
/* one record, or the gap before it, as a JSON line into enc */
static void encode(const struct slot *s, bool gap, const struct nf_origin *origin)
{
	const char *path = NULL;
	size_t path_len = 0;

	if (gap) {
		nf_json_gap(enc, s->gap_after, s->rec.seq, origin);
		return;
	}
	if (pcache && (s->rec.op == SCOUTFS_NOTIFY_OP_OPEN || s->rec.op == SCOUTFS_NOTIFY_OP_READ ||
		       s->rec.op == SCOUTFS_NOTIFY_OP_MMAP))
		path = np_path(pcache, s->rec.ino, s->rec.op == SCOUTFS_NOTIFY_OP_OPEN, &path_len);
	nf_json_record(enc, &s->rec, path, path_len, origin);
}

static bool publish_msg(const char *subj, const char *id, long len);

static bool publish(const struct slot *s, bool gap)
{
	static const struct nf_origin *origin;
	static struct nf_origin o;
	char subj[160];
	char id[80];
	long len;

	if (!origin) {
		o = (struct nf_origin){ fsid, opt.node, rid };
		origin = &o;
	}
	rewind(enc);
	encode(s, gap, origin);
	fflush(enc);
	len = ftell(enc);
	if (len <= 1 || ferror(enc)) {
		logmsg(LOG_ERR, "cannot encode record seq %" PRIu64, (uint64_t)s->rec.seq);
		return false;
	}
	len--;			/* the newline */
	subject(subj, sizeof(subj), &s->rec, gap);
	msg_id(id, sizeof(id), s->rec.seq, gap);
	return publish_msg(subj, id, len);
}

/*
 * --batch: the records of the message starting at s (n slots), each
 * with the gap before it, as JSON lines, on scoutfs.notify.<fsid>.<node>.batch.
 */
static bool publish_batched(const struct slot *s, uint32_t n)
{
	static struct nf_origin o;
	char subj[160];
	char id[96];
	uint64_t first = 0;
	uint64_t last = 0;
	uint32_t i;
	long len;

	o = (struct nf_origin){ fsid, opt.node, rid };
	rewind(enc);
	for (i = 0; i < n; i++) {
		if (s[i].flags & S_SKIP)
			continue;
		if (s[i].flags & S_GAP)
			encode(&s[i], true, &o);
		encode(&s[i], false, &o);
		if (!first)
			first = s[i].rec.seq;
		last = s[i].rec.seq;
	}
	if (!first)
		return true;
	fflush(enc);
	len = ftell(enc);
	if (len <= 1 || ferror(enc)) {
		logmsg(LOG_ERR, "cannot encode records seq %" PRIu64 " to %" PRIu64, first, last);
		return false;
	}
	len--;
	snprintf(subj, sizeof(subj), NN_SUBJECT_PREFIX ".%s.%s.batch", fsid, opt.node);
	batch_id(id, sizeof(id), s[0].rec.seq, last);
	return publish_msg(subj, id, len);
}

static bool publish_msg(const char *subj, const char *id, long len)
{
	jsPubOptions po;
	natsStatus ns;

	/*
	 * No MaxWait: a timer per message would halve what can be
	 * published; publish_batch() notices acknowledgements that
	 * stopped coming instead.
	 */
	jsPubOptions_Init(&po);
	po.MsgId = id;
	for (;;) {
		ns = js_PublishAsync(js, subj, enc_buf, (int)len, &po);
		published_any = true;
		if (ns == NATS_OK)
			return true;
		/* too many in flight: the library waited a while; wait on */
		if (ns == NATS_TIMEOUT && !stopping &&
		    natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) {
			pthread_mutex_lock(&q.lock);
			check_stall();
			ns = q.rewind ? NATS_ERR : NATS_TIMEOUT;
			pthread_mutex_unlock(&q.lock);
			if (ns == NATS_TIMEOUT)
				continue;
		}
		return false;
	}
}

/* locked: decide the gap before the record at slot index i */
static void plan(struct slot *s)
{
	if (s->flags & S_PLANNED)
		return;
	s->flags |= S_PLANNED;
	if (q.prev_known && s->rec.seq <= q.prev_seq) {
		/*
		 * Every connection starts with the daemon's ATTACH: on a
		 * connection to the same daemon again it is one we have
		 * (the stream's, or this run's), not news to count.
		 */
		s->flags |= S_SKIP;
		if (s->rec.op != SCOUTFS_NOTIFY_OP_ATTACH)
			st.skipped++;
		return;
	}
	if (q.prev_known && s->rec.seq > q.prev_seq + 1) {
		s->flags |= S_GAP;
		s->gap_after = q.prev_seq;
	}
	q.prev_seq = s->rec.seq;
	q.prev_known = true;
}

/* take back what is in flight, to publish it again from the tail */
static void do_rewind(void)
{
	natsMsgList pending = { 0 };

	/* (libnats 3.4 crashes taking the list before any async publish) */
	if (published_any && js_PublishAsyncGetPendingList(&pending, js) == NATS_OK)
		natsMsgList_Destroy(&pending);
	pthread_mutex_lock(&q.lock);
	if (q.ack_err[0]) {
		logmsg(LOG_WARNING, "publishing failed, publishing again what the stream has not acknowledged: %s",
		       q.ack_err);
		q.ack_err[0] = '\0';
	}
	q.pub = q.tail;
	pthread_mutex_unlock(&q.lock);
}

/*
 * Locked: a rewind asked for (a failed publish, a reconnect, a stall)
 * takes back what is in flight, unlocked while it does.
 */
static void take_rewind(void)
{
	check_stall();
	if (q.rewind) {
		q.rewind = false;
		q.tail_ms = mono_ms();
		pthread_mutex_unlock(&q.lock);
		do_rewind();
		pthread_mutex_lock(&q.lock);
	}
}

/* locked: wait at most wait_ms for records (or a connection) to publish */
static void wait_for_records(int wait_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)wait_ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&q.cond, &q.lock, &ts);
}

/*
 * Locked, --batch: which records go in which message is decided once,
 * from what is there (never waiting for more), so that a message
 * published again is the same message with the same id.  A window ends
 * before a message that doesn't fit in it: the n slots from start that
 * make whole messages.
 */
static uint64_t plan_messages(uint64_t start, uint64_t n)
{
	struct slot *s;
	uint64_t len;
	uint64_t i;
	uint64_t k;

	for (i = 0; opt.batch_n > 1 && i < n; i++) {
		s = &q.slots[(start + i) % q.cap];
		if (!(s->flags & S_BPLANNED)) {
			len = n - i < opt.batch_n ? n - i : opt.batch_n;
			s->flags |= S_BSTART;
			s->blen = (uint32_t)len;
			for (k = 0; k < len; k++)
				q.slots[(start + i + k) % q.cap].flags |= S_BPLANNED;
		}
		if ((s->flags & S_BSTART) && i + s->blen > n)
			return i;
		if (s->flags & S_BSTART)
			i += s->blen - 1;
	}
	return n;
}

/* locked: the n slots from start planned, marked sent and copied into batch */
static void take_slots(uint64_t start, uint64_t n, struct slot *batch)
{
	struct slot *s;
	bool again;
	uint64_t i;

	for (i = 0; i < n; i++) {
		s = &q.slots[(start + i) % q.cap];
		plan(s);
		batch[i] = *s;
		again = s->flags & S_SENT;
		s->flags |= S_SENT;
		if (again && !slot_done(s))
			st.republished++;
	}
}

/* unlocked: publish what of the copied slots is not acknowledged; false on a failure */
static bool publish_slots(const struct slot *batch, uint64_t n)
{
	const struct slot *s;
	bool ok = true;
	bool done;
	uint64_t i;
	uint64_t k;

	for (i = 0; i < n && ok; i++) {
		s = &batch[i];
		if (opt.batch_n > 1) {
			done = true;
			for (k = 0; k < s->blen; k++)
				done = done && slot_done(&batch[i + k]);
			if (!done)
				ok = publish_batched(s, s->blen);
			i += s->blen - 1;
			continue;
		}
		if (slot_done(s))
			continue;
		if ((s->flags & S_GAP) && !(s->flags & S_ACK_GAP))
			ok = publish(s, true);
		if (ok && !(s->flags & S_ACK_REC))
			ok = publish(s, false);
	}
	return ok;
}

/*
 * Publish one batch from pub; false when there was nothing to do within
 * wait_ms.  The slots are copied under the lock and published without
 * it, so that the reader thread never waits for NATS.
 */
static bool publish_batch(int wait_ms)
{
	static struct slot batch[MAX_BATCH > PUB_BATCH ? MAX_BATCH : PUB_BATCH];
	struct timespec d = { 0, 100 * 1000000L };
	uint64_t win = opt.batch_n > 1 ? MAX_BATCH : PUB_BATCH;
	uint64_t start;
	uint64_t n;
	bool ok;

	pthread_mutex_lock(&q.lock);
	take_rewind();
	if (q.pub >= q.head || natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED) {
		wait_for_records(wait_ms);
		pthread_mutex_unlock(&q.lock);
		return false;
	}
	start = q.pub;
	if (q.pub == q.tail)
		q.tail_ms = mono_ms();	/* the wait for acks starts now */
	n = q.head - q.pub;
	if (n > win)
		n = win;
	n = plan_messages(start, n);
	take_slots(start, n, batch);
	pthread_mutex_unlock(&q.lock);

	ok = publish_slots(batch, n);

	pthread_mutex_lock(&q.lock);
	if (ok) {
		if (q.pub == start)
			q.pub = start + n;
		advance_tail();
	} else {
		q.rewind = true;
	}
	pthread_mutex_unlock(&q.lock);
	/* don't spin on a connection that can't take publishes */
	if (!ok)
		nanosleep(&d, NULL);
	return true;
}

/* ---- the stream ---- */

static int setup_stream(void)
{
	jsStreamInfo *si = NULL;
	jsStreamConfig cfg;
	const char *subjects[] = { NN_SUBJECT_PREFIX ".>" };
	jsErrCode jerr = 0;
	natsStatus s;
	const char *text;

	s = js_GetStreamInfo(&si, js, opt.stream, NULL, &jerr);
	if (s == NATS_OK) {
		logmsg(LOG_INFO, "using the existing stream %s (%" PRId64 " replicas)", opt.stream,
		       si->Config->Replicas);
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (s != NATS_NOT_FOUND) {
		text = nats_GetLastError(NULL);
		logmsg(LOG_ERR, "cannot look up stream %s: %s%s", opt.stream,
		       text ? text : natsStatus_GetText(s),
		       s == NATS_NO_RESPONDERS ? " (is JetStream enabled on the server?)" : "");
		return s == NATS_NO_RESPONDERS ? NN_EXIT_PERMANENT : NN_EXIT_TRANSIENT;
	}
	jsStreamConfig_Init(&cfg);
	cfg.Name = opt.stream;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Retention = js_LimitsPolicy;
	cfg.Discard = js_DiscardOld;
	cfg.Replicas = opt.replicas;
	cfg.MaxAge = opt.max_age_ns;
	cfg.MaxBytes = opt.max_bytes ? opt.max_bytes : -1;
	cfg.Duplicates = opt.dup_window_ns;
	s = js_AddStream(&si, js, &cfg, NULL, &jerr);
	if (s != NATS_OK) {
		text = nats_GetLastError(NULL);
		logmsg(LOG_ERR, "cannot create stream %s (subjects " NN_SUBJECT_PREFIX ".>, %" PRId64
		       " replicas): %s (error %d)", opt.stream, opt.replicas,
		       text ? text : natsStatus_GetText(s), (int)jerr);
		/* a cluster still electing its leaders may take it later */
		return s == NATS_TIMEOUT || jerr == JSClusterNotAvailErr ?
			NN_EXIT_TRANSIENT : NN_EXIT_PERMANENT;
	}
	logmsg(LOG_INFO, "created stream %s: subjects " NN_SUBJECT_PREFIX ".>, file storage, "
	       "%" PRId64 " replicas", opt.stream, opt.replicas);
	jsStreamInfo_Destroy(si);
	return 0;
}

/*
 * What this node last stored for the filesystem: if it is of this
 * mount, records up to its seq are in the stream already, and a record
 * after more than one past it follows a gap.  Otherwise this mount has
 * nothing in the stream, and as its seqs start at 1, a first record
 * with seq S follows S - 1 records that were not forwarded.  That first
 * record is the ATTACH of the daemon's attachment, which every
 * connection starts with: seq 1 on a new mount (no gap), or a later
 * daemon's, after the records of the earlier ones.  Called with the
 * queue empty.
 */
static void last_stored(void)
{
	struct nj_record r;
	natsMsg *m = NULL;
	const char *data;
	char subj[160];
	char err[128];
	jsErrCode jerr = 0;
	natsStatus s;
	int len;
	int i;

	q.prev_known = true;
	q.prev_seq = 0;
	snprintf(subj, sizeof(subj), NN_SUBJECT_PREFIX ".%s.%s.*", fsid, opt.node);
	s = js_GetLastMsg(&m, js, opt.stream, subj, NULL, &jerr);
	if (s != NATS_OK) {
		if (s != NATS_NOT_FOUND)
			logmsg(LOG_WARNING, "cannot read the last message of %s: %s", subj,
			       natsStatus_GetText(s));
		return;
	}
	data = natsMsg_GetData(m);
	len = natsMsg_GetDataLength(m);
	/* a batched message: its last line is its last record */
	for (i = len; i > 0; i--) {
		if (data[i - 1] == '\n') {
			data += i;
			len -= i;
			break;
		}
	}
	if (nj_parse(data, len, &r, err, sizeof(err))) {
		logmsg(LOG_WARNING, "the last message of %s is not a record: %s", subj, err);
	} else if (r.rid && !strcmp(r.rid, rid)) {
		q.prev_seq = r.gap ? r.seq - 1 : r.seq;
		q.prev_known = true;
		logmsg(LOG_INFO, "the stream holds this mount's records up to seq %" PRIu64,
		       q.prev_seq);
	}
	nj_free(&r);
	natsMsg_Destroy(m);
}

/* ---- the daemon's socket ---- */

/* the connection to the daemon, for many records per message */
static struct ns_conn conn;

static int connect_daemon(bool quiet)
{
	if (ns_connect(&conn, opt.sock_path, NS_MAX_RECS, PROG)) {
		if (!quiet)
			logmsg(LOG_ERR, "%s%s", conn.err, errno == ENOENT || errno == ECONNREFUSED ?
			       " (is scoutfs-notifyd running for this mount?)" : "");
		return -1;
	}
	return 0;
}

/* is mnt_path still the mount we hold open (not unmounted under us)? */
static bool mount_there(void)
{
	struct stat a;
	struct stat b;
	char f[NP_FSID_LEN];
	char r[NP_RID_LEN];

	return stat(opt.mnt_path, &a) == 0 && fstat(mnt_fd, &b) == 0 && a.st_dev == b.st_dev &&
	       np_mount_ids(mnt_fd, f, r) == 0;
}

static void enqueue(const rec_t *recs, int n)
{
	int i;

	pthread_mutex_lock(&q.lock);
	for (i = 0; i < n; i++) {
		st.received++;
		if (q.head - q.tail >= q.cap) {
			st.buffer_dropped++;
			continue;
		}
		q.slots[q.head % q.cap] = (struct slot){ .rec = recs[i] };
		q.head++;
	}
	pthread_cond_broadcast(&q.cond);
	pthread_mutex_unlock(&q.lock);
}

/* wait until the buffer is empty (all acknowledged) or we stop */
static void wait_drained(void)
{
	struct timespec ts;

	pthread_mutex_lock(&q.lock);
	while (q.tail < q.head && !stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&q.cond, &q.lock, &ts);
	}
	pthread_mutex_unlock(&q.lock);
}

/*
 * The reader thread: records from the socket into the buffer, never
 * waiting for anything else, so that the daemon never drops records
 * for us while the buffer has room.  When the daemon goes away it
 * waits for the buffer to drain and connects again; if the mount went
 * away it ends the program with status 4.
 */
/*
 * Records from the socket into the buffer until the daemon closes the
 * connection (or we stop): returns false when we stop.
 */
static bool read_socket(void)
{
	static rec_t recs[NS_RECV_RECS];
	struct pollfd pfd;
	bool eof = false;
	long n;

	while (!stopping && !eof) {
		pfd = (struct pollfd){ .fd = conn.fd, .events = POLLIN };
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = ns_recv(&conn, recs, true, &eof);
		if (n < 0 && !eof) {
			logmsg(LOG_WARNING, "%s", conn.err);
			eof = true;
		}
		if (n > 0)
			enqueue(recs, (int)n);
	}
	ns_close(&conn);
	return !stopping;
}

static void *reader_main(void *arg)
{
	char f[NP_FSID_LEN];
	char r[NP_RID_LEN];
	unsigned backoff = 100;
	bool connected;

	(void)arg;
	while (read_socket()) {
		logmsg(LOG_WARNING, "scoutfs-notifyd closed the connection; publishing what is buffered, then connecting again");
		wait_drained();
		connected = false;
		while (!stopping && !connected) {
			if (!mount_there()) {
				logmsg(LOG_ERR, "%s is no longer mounted", opt.mnt_path);
				exit_status = NN_EXIT_GONE;
				stopping = true;
				break;
			}
			connected = connect_daemon(true) == 0;
			if (!connected) {
				struct timespec d = { backoff / 1000, (backoff % 1000) * 1000000L };

				nanosleep(&d, NULL);
				backoff = backoff < 2000 ? backoff * 2 : 2000;
			}
		}
		if (!connected)
			break;
		backoff = 100;
		pthread_mutex_lock(&q.lock);
		st.daemon_sessions++;
		pthread_mutex_unlock(&q.lock);
		if (np_mount_ids(mnt_fd, f, r) == 0 && strcmp(r, rid)) {
			/* mounted again: a new rid, its own seqs (the queue is empty) */
			logmsg(LOG_INFO, "the mount's rid is now %s (was %s)", r, rid);
			pthread_mutex_lock(&q.lock);
			strcpy(rid, r);
			last_stored();
			pthread_mutex_unlock(&q.lock);
		}
		logmsg(LOG_INFO, "connected to %s again", opt.sock_path);
	}
	pthread_mutex_lock(&q.lock);
	q.reader_done = true;
	pthread_cond_broadcast(&q.cond);
	pthread_mutex_unlock(&q.lock);
	return NULL;
}

/* ---- the command line ---- */

enum {
	OPT_NODE = 2000,
	OPT_STREAM,
	OPT_REPLICAS,
	OPT_MAX_AGE,
	OPT_MAX_BYTES,
	OPT_DUP_WINDOW,
	OPT_BUFFER,
	OPT_MAX_INFLIGHT,
	OPT_DRAIN_TIMEOUT,
	OPT_SOCKET,
	OPT_BATCH,
};

static const struct option long_opts[] = {
	NN_LONG_OPTS,
	{ "node", required_argument, NULL, OPT_NODE },
	{ "stream", required_argument, NULL, OPT_STREAM },
	{ "replicas", required_argument, NULL, OPT_REPLICAS },
	{ "max-age", required_argument, NULL, OPT_MAX_AGE },
	{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
	{ "dup-window", required_argument, NULL, OPT_DUP_WINDOW },
	{ "buffer", required_argument, NULL, OPT_BUFFER },
	{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
	{ "drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "run-dir", required_argument, NULL, 'r' },
	{ "no-paths", no_argument, NULL, 'P' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* option name's 1 to max (unit after max in the message); 0 or -1 (printed) */
static int take_count(const char *arg, const char *name, int64_t max, const char *unit,
		      int64_t *v)
{
	*v = parse_count(arg, 1, max);
	if (*v < 0) {
		fprintf(stderr, PROG ": %s must be 1 to %lld%s, not '%s'\n", name, (long long)max,
			unit, arg);
		return -1;
	}
	return 0;
}

/* option name's duration of at least min ns (example in the message); 0 or -1 (printed) */
static int take_dur(const char *arg, const char *name, int64_t min, const char *example,
		    int64_t *v)
{
	*v = parse_dur(arg);
	if (*v < min) {
		fprintf(stderr, PROG ": bad %s '%s' (e.g. %s)\n", name, arg, example);
		return -1;
	}
	return 0;
}

/* the options of a stream the forwarder creates; 0 or -1 (printed) */
static int take_stream_opt(int c, const char *arg)
{
	switch (c) {
	case OPT_REPLICAS:
		return take_count(arg, "--replicas", 5, "", &opt.replicas);
	case OPT_MAX_AGE:
		return take_dur(arg, "--max-age", 0, "30d, 12h, 0", &opt.max_age_ns);
	case OPT_MAX_BYTES:
		if ((opt.max_bytes = parse_size(arg)) < 0) {
			fprintf(stderr, PROG ": bad --max-bytes '%s' (e.g. 500M, 10G, 0)\n", arg);
			return -1;
		}
		return 0;
	default:
		return take_dur(arg, "--dup-window", 1, "2m", &opt.dup_window_ns);
	}
}

/* --node, --stream: subject tokens; 0 or -1 (printed) */
static int take_name(int c, const char *arg)
{
	if (c == OPT_NODE) {
		if (!nn_token_ok(arg)) {
			fprintf(stderr, PROG ": --node must be 1 to %d letters, digits, '-' or '_' (a NATS subject token), not '%s'\n",
				NN_TOKEN_MAX, arg);
			return -1;
		}
		strcpy(opt.node, arg);
		return 0;
	}
	if (!nn_token_ok(arg)) {
		fprintf(stderr, PROG ": --stream must be letters, digits, '-' or '_', not '%s'\n",
			arg);
		return -1;
	}
	opt.stream = arg;
	return 0;
}

/* one option of ours (not NATS's, not --help) into opt; 0 or -1 (printed) */
static int take_opt(int c, const char *arg)
{
	int64_t v;

	switch (c) {
	case OPT_NODE:
	case OPT_STREAM:
		return take_name(c, arg);
	case OPT_REPLICAS:
	case OPT_MAX_AGE:
	case OPT_MAX_BYTES:
	case OPT_DUP_WINDOW:
		return take_stream_opt(c, arg);
	case OPT_BUFFER:
		if (take_count(arg, "--buffer", 1LL << 30, " records", &v))
			return -1;
		opt.buffer = (uint64_t)v;
		return 0;
	case OPT_MAX_INFLIGHT:
		return take_count(arg, "--max-inflight", 1 << 20, "", &opt.max_inflight);
	case OPT_DRAIN_TIMEOUT:
		if (take_dur(arg, "--drain-timeout", 0, "5s", &v))
			return -1;
		opt.drain_ms = v / 1000000;
		return 0;
	case OPT_SOCKET:
		opt.sock_path = arg;
		return 0;
	case OPT_BATCH:
		if (take_count(arg, "--batch", MAX_BATCH, " records", &v))
			return -1;
		opt.batch_n = (uint32_t)v;
		return 0;
	case 'r':
		opt.run_dir = arg;
		return 0;
	case 'P':
		opt.paths = false;
		return 0;
	default:
		usage(stderr);
		return -1;
	}
}

/*
 * The command line into opt, each option checked as it comes, then
 * the mount point and the NATS options together: -1 to go on, or the
 * exit status (0 after --help).
 */
static int parse_opts(int argc, char **argv)
{
	int ret;

	default_node();
	ret = nn_parse_opts(&opt.nopts, argc, argv, "s:r:Ph", long_opts, take_opt, usage, PROG);
	if (ret >= 0)
		return ret;
	if (argc - optind != 1) {
		fprintf(stderr, PROG ": %s\n", argc - optind > 1 ? "too many arguments" :
			"missing <mountpoint>");
		usage(stderr);
		return NN_EXIT_USAGE;
	}
	opt.mnt_path = argv[optind];
	if (nn_check(&opt.nopts, PROG))
		return NN_EXIT_USAGE;
	return -1;
}

/* ---- setup ---- */

/* the mount, its ids and the daemon's socket path; 0 or the exit status (printed) */
static int open_mount(void)
{
	struct sockaddr_un sun;

	mnt_fd = open(opt.mnt_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mnt_fd < 0 || np_mount_ids(mnt_fd, fsid, rid)) {
		logmsg(LOG_ERR, "%s: %s", opt.mnt_path, errno == ENOTTY || errno == EINVAL ?
		       "not a scoutfs filesystem" : strerror(errno));
		return NN_EXIT_PERMANENT;
	}
	if (!opt.sock_path) {
		if (snprintf(sock_buf, sizeof(sock_buf), "%s/%s/notify.sock", opt.run_dir, fsid) >=
		    (int)sizeof(sock_buf)) {
			fprintf(stderr, PROG ": socket path too long\n");
			return NN_EXIT_USAGE;
		}
		opt.sock_path = sock_buf;
	}
	if (strlen(opt.sock_path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, PROG ": socket path too long\n");
		return NN_EXIT_USAGE;
	}
	return 0;
}

/*
 * The mount, the path cache, the buffer and the encoder, then the
 * signals, which are taken with sigtimedwait() by the main thread
 * alone; 0 or the exit status (printed).
 */
static int prepare(sigset_t *sigs)
{
	int ret;

	ret = open_mount();
	if (ret)
		return ret;
	if (opt.paths) {
		pcache = np_cache_new(mnt_fd, opt.mnt_path);
		if (!pcache)
			return NN_EXIT_TRANSIENT;
	}
	q.cap = opt.buffer;
	q.slots = calloc(q.cap, sizeof(*q.slots));
	enc = open_memstream(&enc_buf, &enc_size);
	if (!q.slots || !enc) {
		logmsg(LOG_ERR, "cannot allocate a buffer of %" PRIu64 " records", opt.buffer);
		return NN_EXIT_TRANSIENT;
	}
	nn_block_signals(sigs, SIGUSR1);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* NATS and its JetStream context, for asynchronous publishes; 0 or the exit status */
static int connect_nats(void)
{
	jsOptions jso;
	natsStatus ns;
	int ret;

	opt.nopts.name = PROG;
	ret = nn_connect(&nc, &opt.nopts, true, on_disconnected, on_reconnected, NULL, PROG);
	if (ret)
		return ret;
	jsOptions_Init(&jso);
	jso.PublishAsync.MaxPending = opt.max_inflight;
	jso.PublishAsync.AckHandler = on_ack;
	jso.PublishAsync.StallWait = 200;
	jso.Wait = 5000;
	ns = natsConnection_JetStream(&js, nc, &jso);
	if (ns != NATS_OK) {
		logmsg(LOG_ERR, "JetStream: %s", natsStatus_GetText(ns));
		return NN_EXIT_TRANSIENT;
	}
	return 0;
}

/*
 * The stream (made if missing) and what it holds of this mount, then
 * the daemon's socket and the reader thread; 0 or the exit status
 * (printed).
 */
static int start(pthread_t *reader)
{
	int ret;

	ret = setup_stream();
	if (ret)
		return ret;
	last_stored();
	if (connect_daemon(false))
		return NN_EXIT_TRANSIENT;
	st.daemon_sessions = 1;
	if (pthread_create(reader, NULL, reader_main, NULL)) {
		logmsg(LOG_ERR, "cannot start the reader thread");
		return NN_EXIT_TRANSIENT;
	}
	logmsg(LOG_INFO, "forwarding %s (fsid %s, rid %s) from %s to stream %s as node %s",
	       opt.mnt_path, fsid, rid, opt.sock_path, opt.stream, opt.node);
	sd_notify_msg("READY=1");
	return 0;
}

/* ---- the loop ---- */

/*
 * Signals, and whether to stop publishing: SIGTERM or SIGINT (or the
 * reader thread ending when the mount went away) start a drain of at
 * most --drain-timeout, which ends when the buffer is empty.
 */
static bool stop_due(const sigset_t *sigs, uint64_t *deadline)
{
	struct timespec zero = { 0, 0 };
	bool stop;
	int sig;

	sig = sigtimedwait(sigs, NULL, &zero);
	if (sig == SIGUSR1)
		log_stats();
	if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
		logmsg(LOG_INFO, "stopping: publishing what is buffered (at most %" PRId64 " ms)",
		       opt.drain_ms);
		sd_notify_msg("STOPPING=1");
		stopping = true;
		*deadline = mono_ms() + opt.drain_ms;
	}
	pthread_mutex_lock(&q.lock);
	if (q.reader_done && !*deadline) {
		/* the mount went away: publish the rest, then exit 4 */
		stopping = true;
		*deadline = mono_ms() + opt.drain_ms;
	}
	stop = stopping && (q.tail == q.head || mono_ms() >= *deadline);
	pthread_mutex_unlock(&q.lock);
	return stop;
}

/* publish until told to stop, then let the reader go; the exit status */
static int forward(const sigset_t *sigs, pthread_t reader)
{
	uint64_t deadline = 0;

	while (!stop_due(sigs, &deadline))
		publish_batch(50);
	pthread_join(reader, NULL);
	pthread_mutex_lock(&q.lock);
	if (q.tail != q.head)
		logmsg(LOG_WARNING, "%" PRIu64 " records were not acknowledged by the stream; the next forwarder publishes them as a gap",
		       q.head - q.tail);
	pthread_mutex_unlock(&q.lock);
	log_stats();
	return exit_status;
}

static void teardown(void)
{
	natsMsgList pending = { 0 };

	if (nc && published_any && js_PublishAsyncGetPendingList(&pending, js) == NATS_OK)
		natsMsgList_Destroy(&pending);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nn_free(&opt.nopts);
	np_cache_free(pcache);
	if (enc)
		fclose(enc);
	free(enc_buf);
	free(q.slots);
	if (mnt_fd >= 0)
		close(mnt_fd);
	nats_Close();
}

/*
 * Errors before NATS is connected return at once, as they always have;
 * from the stream on, what was set up is torn down.
 */
int main(int argc, char **argv)
{
	pthread_t reader;
	sigset_t sigs;
	int ret;

	ret = parse_opts(argc, argv);
	if (ret >= 0)
		return ret;
	ret = prepare(&sigs);
	if (!ret)
		ret = connect_nats();
	if (ret)
		return ret;
	ret = start(&reader);
	if (!ret)
		ret = forward(&sigs, reader);
	teardown();
	return ret;
}
