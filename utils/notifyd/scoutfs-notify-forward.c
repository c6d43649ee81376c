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

/* configuration */
static struct nn_opts nopts;
static const char *mnt_path;
static const char *sock_path;
static char sock_buf[PATH_MAX];
static const char *run_dir = DEFAULT_RUN_DIR;
static const char *stream = NN_DEFAULT_STREAM;
static char node[NN_TOKEN_MAX + 1];
static char fsid[NP_FSID_LEN];
static char rid[NP_RID_LEN];
static int64_t replicas = 1;
static int64_t max_age_ns = 7LL * 24 * 3600 * 1000000000LL;
static int64_t max_bytes = 10LL << 30;
static int64_t dup_window_ns = 120LL * 1000000000LL;
static int64_t max_inflight = 16384;
static int64_t drain_ms = 5000;
static bool paths = true;
static uint32_t batch_n = 1;	/* records per message */

static int mnt_fd = -1;
static struct np_cache *pcache;
static natsConnection *nc;
static jsCtx *js;
static volatile bool stopping;
static int exit_status;

static void logmsg(int prio, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "<%d>" PROG ": ", prio);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define LOG_ERR		3
#define LOG_WARNING	4
#define LOG_INFO	6

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
	strcpy(node, host);
}

/*
 * Tell systemd (Type=notify) about our state, if it is listening,
 * without linking libsystemd: one datagram to $NOTIFY_SOCKET.
 */
static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sun.sun_path))
		return;
	if (path[0] != '/' && path[0] != '@')
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = 0;
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
		logmsg(LOG_WARNING, "can't notify systemd: %s", strerror(errno));
	close(fd);
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
	snprintf(buf, size, NN_SUBJECT_PREFIX ".%s.%s.%s", fsid, node, op);
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

static void on_ack(jsCtx *ctx, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	const char *id = NULL;
	const char *p;
	bool gap = false;
	uint64_t seq;
	uint64_t i;
	struct slot *s;

	(void)ctx;
	(void)closure;
	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !id)
		goto out;
	/* <fsid>.<rid>.<seq>[.gap] */
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
		/* every record (and gap) of the message at once */
		if (pae) {
			st.pub_errors++;
			if (!q.ack_err[0])
				snprintf(q.ack_err, sizeof(q.ack_err), "%s (%s)",
					 pae->ErrText ? pae->ErrText : "", natsStatus_GetText(pae->Err));
			if (s && !(s->flags & S_ACK_REC))
				q.rewind = true;
			pthread_cond_broadcast(&q.cond);
		} else if (s && (s->flags & S_BSTART) && !(s->flags & S_ACK_REC)) {
			uint64_t k;
			uint32_t n = s->blen;

			if (pa && pa->Duplicate)
				st.duplicates++;
			for (k = i; k < i + n && k < q.head; k++) {
				struct slot *b = &q.slots[k % q.cap];

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
		pthread_mutex_unlock(&q.lock);
		goto out;
	}
	if (pae) {
		st.pub_errors++;
		if (!q.ack_err[0])
			snprintf(q.ack_err, sizeof(q.ack_err), "%s (%s)",
				 pae->ErrText ? pae->ErrText : "", natsStatus_GetText(pae->Err));
		if (s && !(s->flags & (gap ? S_ACK_GAP : S_ACK_REC)))
			q.rewind = true;
		pthread_cond_broadcast(&q.cond);
	} else if (s && !(s->flags & (gap ? S_ACK_GAP : S_ACK_REC))) {
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
		o = (struct nf_origin){ fsid, node, rid };
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

	o = (struct nf_origin){ fsid, node, rid };
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
	snprintf(subj, sizeof(subj), NN_SUBJECT_PREFIX ".%s.%s.batch", fsid, node);
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
 * Publish one batch from pub; false when there was nothing to do within
 * wait_ms.
 */
static bool publish_batch(int wait_ms)
{
	static struct slot batch[MAX_BATCH > PUB_BATCH ? MAX_BATCH : PUB_BATCH];
	struct timespec ts;
	uint64_t start;
	uint64_t win;
	uint64_t n;
	uint64_t i;
	uint64_t k;
	bool ok = true;
	bool again;

	pthread_mutex_lock(&q.lock);
	check_stall();
	if (q.rewind) {
		q.rewind = false;
		q.tail_ms = mono_ms();
		pthread_mutex_unlock(&q.lock);
		do_rewind();
		pthread_mutex_lock(&q.lock);
	}
	if (q.pub >= q.head || natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)wait_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&q.cond, &q.lock, &ts);
		pthread_mutex_unlock(&q.lock);
		return false;
	}
	start = q.pub;
	if (q.pub == q.tail)
		q.tail_ms = mono_ms();	/* the wait for acks starts now */
	win = batch_n > 1 ? MAX_BATCH : PUB_BATCH;
	n = q.head - q.pub;
	if (n > win)
		n = win;
	/*
	 * --batch: which records go in which message is decided once, from
	 * what is there (never waiting for more), so that a message
	 * published again is the same message with the same id.  A window
	 * ends before a message that doesn't fit in it.
	 */
	for (i = 0; batch_n > 1 && i < n; i++) {
		struct slot *s = &q.slots[(start + i) % q.cap];

		if (!(s->flags & S_BPLANNED)) {
			uint64_t len = n - i < batch_n ? n - i : batch_n;

			s->flags |= S_BSTART;
			s->blen = (uint32_t)len;
			for (k = 0; k < len; k++)
				q.slots[(start + i + k) % q.cap].flags |= S_BPLANNED;
		}
		if ((s->flags & S_BSTART) && i + s->blen > n) {
			n = i;
			break;
		}
		if (s->flags & S_BSTART)
			i += s->blen - 1;
	}
	for (i = 0; i < n; i++) {
		struct slot *s = &q.slots[(start + i) % q.cap];

		plan(s);
		batch[i] = *s;
		again = s->flags & S_SENT;
		s->flags |= S_SENT;
		if (again && !slot_done(s))
			st.republished++;
	}
	pthread_mutex_unlock(&q.lock);

	for (i = 0; i < n && ok; i++) {
		const struct slot *s = &batch[i];

		if (batch_n > 1) {
			bool done = true;

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

	pthread_mutex_lock(&q.lock);
	if (ok) {
		if (q.pub == start)
			q.pub = start + n;
		advance_tail();
	} else {
		q.rewind = true;
	}
	pthread_mutex_unlock(&q.lock);
	if (!ok) {
		/* don't spin on a connection that can't take publishes */
		struct timespec d = { 0, 100 * 1000000L };

		nanosleep(&d, NULL);
	}
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

	s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
	if (s == NATS_OK) {
		logmsg(LOG_INFO, "using the existing stream %s (%" PRId64 " replicas)", stream,
		       si->Config->Replicas);
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (s != NATS_NOT_FOUND) {
		text = nats_GetLastError(NULL);
		logmsg(LOG_ERR, "cannot look up stream %s: %s%s", stream,
		       text ? text : natsStatus_GetText(s),
		       s == NATS_NO_RESPONDERS ? " (is JetStream enabled on the server?)" : "");
		return s == NATS_NO_RESPONDERS ? NN_EXIT_PERMANENT : NN_EXIT_TRANSIENT;
	}
	jsStreamConfig_Init(&cfg);
	cfg.Name = stream;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Retention = js_LimitsPolicy;
	cfg.Discard = js_DiscardOld;
	cfg.Replicas = replicas;
	cfg.MaxAge = max_age_ns;
	cfg.MaxBytes = max_bytes ? max_bytes : -1;
	cfg.Duplicates = dup_window_ns;
	s = js_AddStream(&si, js, &cfg, NULL, &jerr);
	if (s != NATS_OK) {
		text = nats_GetLastError(NULL);
		logmsg(LOG_ERR, "cannot create stream %s (subjects " NN_SUBJECT_PREFIX ".>, %" PRId64
		       " replicas): %s (error %d)", stream, replicas,
		       text ? text : natsStatus_GetText(s), (int)jerr);
		/* a cluster still electing its leaders may take it later */
		return s == NATS_TIMEOUT || jerr == JSClusterNotAvailErr ?
			NN_EXIT_TRANSIENT : NN_EXIT_PERMANENT;
	}
	logmsg(LOG_INFO, "created stream %s: subjects " NN_SUBJECT_PREFIX ".>, file storage, "
	       "%" PRId64 " replicas", stream, replicas);
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
	snprintf(subj, sizeof(subj), NN_SUBJECT_PREFIX ".%s.%s.*", fsid, node);
	s = js_GetLastMsg(&m, js, stream, subj, NULL, &jerr);
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
	if (ns_connect(&conn, sock_path, NS_MAX_RECS, PROG)) {
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

	return stat(mnt_path, &a) == 0 && fstat(mnt_fd, &b) == 0 && a.st_dev == b.st_dev &&
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
				logmsg(LOG_ERR, "%s is no longer mounted", mnt_path);
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
		logmsg(LOG_INFO, "connected to %s again", sock_path);
	}
	pthread_mutex_lock(&q.lock);
	q.reader_done = true;
	pthread_cond_broadcast(&q.cond);
	pthread_mutex_unlock(&q.lock);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		NN_LONG_OPTS,
		{ "node", required_argument, NULL, 2000 },
		{ "stream", required_argument, NULL, 2001 },
		{ "replicas", required_argument, NULL, 2002 },
		{ "max-age", required_argument, NULL, 2003 },
		{ "max-bytes", required_argument, NULL, 2004 },
		{ "dup-window", required_argument, NULL, 2005 },
		{ "buffer", required_argument, NULL, 2006 },
		{ "max-inflight", required_argument, NULL, 2007 },
		{ "drain-timeout", required_argument, NULL, 2008 },
		{ "socket", required_argument, NULL, 2009 },
		{ "batch", required_argument, NULL, 2010 },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "no-paths", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_un sun;
	jsOptions jso;
	sigset_t sigs;
	struct timespec zero = { 0, 0 };
	pthread_t reader;
	uint64_t deadline = 0;
	uint64_t buffer = 1048576;
	int64_t v;
	natsStatus ns;
	int sig;
	int ret;
	int c;

	default_node();
	while ((c = getopt_long(argc, argv, "s:r:Ph", opts, NULL)) != -1) {
		ret = nn_opt(&nopts, c, optarg, PROG);
		if (ret < 0)
			return NN_EXIT_USAGE;
		if (ret > 0)
			continue;
		switch (c) {
		case 2000:
			if (!nn_token_ok(optarg)) {
				fprintf(stderr, PROG ": --node must be 1 to %d letters, digits, '-' or '_' (a NATS subject token), not '%s'\n",
					NN_TOKEN_MAX, optarg);
				return NN_EXIT_USAGE;
			}
			strcpy(node, optarg);
			break;
		case 2001:
			if (!nn_token_ok(optarg)) {
				fprintf(stderr, PROG ": --stream must be letters, digits, '-' or '_', not '%s'\n",
					optarg);
				return NN_EXIT_USAGE;
			}
			stream = optarg;
			break;
		case 2002:
			if ((replicas = parse_count(optarg, 1, 5)) < 0) {
				fprintf(stderr, PROG ": --replicas must be 1 to 5, not '%s'\n", optarg);
				return NN_EXIT_USAGE;
			}
			break;
		case 2003:
			if ((max_age_ns = parse_dur(optarg)) < 0) {
				fprintf(stderr, PROG ": bad --max-age '%s' (e.g. 30d, 12h, 0)\n", optarg);
				return NN_EXIT_USAGE;
			}
			break;
		case 2004:
			if ((max_bytes = parse_size(optarg)) < 0) {
				fprintf(stderr, PROG ": bad --max-bytes '%s' (e.g. 500M, 10G, 0)\n", optarg);
				return NN_EXIT_USAGE;
			}
			break;
		case 2005:
			if ((dup_window_ns = parse_dur(optarg)) <= 0) {
				fprintf(stderr, PROG ": bad --dup-window '%s' (e.g. 2m)\n", optarg);
				return NN_EXIT_USAGE;
			}
			break;
		case 2006:
			if ((v = parse_count(optarg, 1, 1LL << 30)) < 0) {
				fprintf(stderr, PROG ": --buffer must be 1 to %lld records, not '%s'\n",
					1LL << 30, optarg);
				return NN_EXIT_USAGE;
			}
			buffer = (uint64_t)v;
			break;
		case 2007:
			if ((max_inflight = parse_count(optarg, 1, 1 << 20)) < 0) {
				fprintf(stderr, PROG ": --max-inflight must be 1 to %d, not '%s'\n",
					1 << 20, optarg);
				return NN_EXIT_USAGE;
			}
			break;
		case 2008:
			if ((v = parse_dur(optarg)) < 0) {
				fprintf(stderr, PROG ": bad --drain-timeout '%s' (e.g. 5s)\n", optarg);
				return NN_EXIT_USAGE;
			}
			drain_ms = v / 1000000;
			break;
		case 2009:
			sock_path = optarg;
			break;
		case 2010:
			if ((v = parse_count(optarg, 1, MAX_BATCH)) < 0) {
				fprintf(stderr, PROG ": --batch must be 1 to %d records, not '%s'\n",
					MAX_BATCH, optarg);
				return NN_EXIT_USAGE;
			}
			batch_n = (uint32_t)v;
			break;
		case 'r':
			run_dir = optarg;
			break;
		case 'P':
			paths = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return NN_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, PROG ": %s\n", argc - optind > 1 ? "too many arguments" :
			"missing <mountpoint>");
		usage(stderr);
		return NN_EXIT_USAGE;
	}
	mnt_path = argv[optind];
	if (nn_check(&nopts, PROG))
		return NN_EXIT_USAGE;

	mnt_fd = open(mnt_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mnt_fd < 0 || np_mount_ids(mnt_fd, fsid, rid)) {
		logmsg(LOG_ERR, "%s: %s", mnt_path, errno == ENOTTY || errno == EINVAL ?
		       "not a scoutfs filesystem" : strerror(errno));
		return NN_EXIT_PERMANENT;
	}
	if (!sock_path) {
		if (snprintf(sock_buf, sizeof(sock_buf), "%s/%s/notify.sock", run_dir, fsid) >=
		    (int)sizeof(sock_buf)) {
			fprintf(stderr, PROG ": socket path too long\n");
			return NN_EXIT_USAGE;
		}
		sock_path = sock_buf;
	}
	if (strlen(sock_path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, PROG ": socket path too long\n");
		return NN_EXIT_USAGE;
	}
	if (paths) {
		pcache = np_cache_new(mnt_fd, mnt_path);
		if (!pcache)
			return NN_EXIT_TRANSIENT;
	}
	q.cap = buffer;
	q.slots = calloc(q.cap, sizeof(*q.slots));
	enc = open_memstream(&enc_buf, &enc_size);
	if (!q.slots || !enc) {
		logmsg(LOG_ERR, "cannot allocate a buffer of %" PRIu64 " records", buffer);
		return NN_EXIT_TRANSIENT;
	}

	/* signals are taken with sigtimedwait() by the main thread alone */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	nopts.name = PROG;
	ret = nn_connect(&nc, &nopts, true, on_disconnected, on_reconnected, NULL, PROG);
	if (ret)
		return ret;
	jsOptions_Init(&jso);
	jso.PublishAsync.MaxPending = max_inflight;
	jso.PublishAsync.AckHandler = on_ack;
	jso.PublishAsync.StallWait = 200;
	jso.Wait = 5000;
	ns = natsConnection_JetStream(&js, nc, &jso);
	if (ns != NATS_OK) {
		logmsg(LOG_ERR, "JetStream: %s", natsStatus_GetText(ns));
		return NN_EXIT_TRANSIENT;
	}
	ret = setup_stream();
	if (ret)
		goto out;
	last_stored();

	if (connect_daemon(false)) {
		ret = NN_EXIT_TRANSIENT;
		goto out;
	}
	st.daemon_sessions = 1;
	if (pthread_create(&reader, NULL, reader_main, NULL)) {
		logmsg(LOG_ERR, "cannot start the reader thread");
		ret = NN_EXIT_TRANSIENT;
		goto out;
	}
	logmsg(LOG_INFO, "forwarding %s (fsid %s, rid %s) from %s to stream %s as node %s",
	       mnt_path, fsid, rid, sock_path, stream, node);
	sd_notify_msg("READY=1");

	for (;;) {
		sig = sigtimedwait(&sigs, NULL, &zero);
		if (sig == SIGUSR1)
			log_stats();
		if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
			logmsg(LOG_INFO, "stopping: publishing what is buffered (at most %" PRId64 " ms)",
			       drain_ms);
			sd_notify_msg("STOPPING=1");
			stopping = true;
			deadline = mono_ms() + drain_ms;
		}
		pthread_mutex_lock(&q.lock);
		if (q.reader_done && !deadline) {
			/* the mount went away: publish the rest, then exit 4 */
			stopping = true;
			deadline = mono_ms() + drain_ms;
		}
		if (stopping && (q.tail == q.head || mono_ms() >= deadline)) {
			pthread_mutex_unlock(&q.lock);
			break;
		}
		pthread_mutex_unlock(&q.lock);
		publish_batch(50);
	}
	pthread_join(reader, NULL);
	pthread_mutex_lock(&q.lock);
	if (q.tail != q.head)
		logmsg(LOG_WARNING, "%" PRIu64 " records were not acknowledged by the stream; the next forwarder publishes them as a gap",
		       q.head - q.tail);
	pthread_mutex_unlock(&q.lock);
	log_stats();
	ret = exit_status;
out:
	if (nc && published_any) {
		natsMsgList pending = { 0 };

		if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK)
			natsMsgList_Destroy(&pending);
	}
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nn_free(&nopts);
	np_cache_free(pcache);
	if (enc)
		fclose(enc);
	free(enc_buf);
	free(q.slots);
	if (mnt_fd >= 0)
		close(mnt_fd);
	nats_Close();
	return ret;
}
