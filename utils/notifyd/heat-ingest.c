/*
 * scoutfs-notify-heat ingest: the service.  Records come from the NATS
 * JetStream stream of every node (a durable pull consumer, never
 * acknowledged: the committed position says what was applied, and what
 * it delivered past that position is read again, see
 * existing_consumer()), or, for a site without NATS, from one node's
 * scoutfs-notifyd socket.  heat-apply.c applies
 * them in memory; every --flush-interval (or --flush-files files, or
 * once the stream is drained) one transaction writes them with the
 * position, in heat-apply.c's writer thread while this one takes what
 * comes next.  So a process killed at any point and started again
 * gives the index an uninterrupted run gives: what is read again was
 * applied already or was not committed.
 * A database that fails a transaction (locked past the busy timeout,
 * read-only, full) ends the process with the reason and nothing of that
 * transaction written; the next run reads the rest again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "heat.h"
#include "heat-apply.h"
#include "notify-path.h"
#ifdef HEAT_NATS
#include "notify-nats.h"
#endif

#define DEFAULT_RUN_DIR		"/run/scoutfs"
#define DEFAULT_DURABLE		"scoutfs-notify-heat"
#define FETCH_MAX		1024
#define FLUSH_MSGS		16384	/* messages a transaction holds once the writer is idle */
#define FLUSH_MSGS_MAX		32768	/* or at most, the writer busy or not */

struct ingest {
	struct hs *h;
	struct ha *a;
	const char *socket_mnt;
	const char *run_dir;
	char node[HA_NODE_MAX + 1];
	int64_t flush_ns;	/* at most this long between flushes */
	size_t flush_files;	/* or this many files pending */
	int64_t first_pending;	/* when the oldest unflushed change came */
	uint64_t since_flush;	/* messages since the last flush */
	const char *stream;
	const char *durable;
#ifdef HEAT_NATS
	struct nn_opts nopts;
#endif
	bool nats;
};

static volatile sig_atomic_t stop_sig;
static volatile sig_atomic_t counts_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
}

static void on_usr1(int sig)
{
	(void)sig;
	counts_sig = 1;
}

static void signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void print_counts(struct ingest *in)
{
	const struct ha_counts *c = ha_counts(in->a);

	fprintf(stderr, PROG ": counts: messages %" PRIu64 ", applied %" PRIu64 ", duplicate %" PRIu64
		", late %" PRIu64 ", rejected %" PRIu64 ", unknown op %" PRIu64 ", gaps %" PRIu64
		" (%" PRIu64 " records lost), flushes %" PRIu64 ", file rows %" PRIu64
		", pending files %zu\n",
		c->messages, c->applied, c->duplicate, c->late, c->rejected, c->unknown, c->gaps,
		c->lost, c->flushes, c->rows, ha_pending_files(in->a));
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--db DB] ingest --server URL [options]\n"
		"       " PROG " [--db DB] ingest --socket MOUNT [options]\n"
		"\n"
		"Apply access records to the index until SIGTERM: from the NATS JetStream\n"
		"stream of every node (a durable consumer), or from this node's\n"
		"scoutfs-notifyd socket for MOUNT.\n"
		"\n"
#ifdef HEAT_NATS
		NN_OPTS_HELP
		"      --stream NAME      the stream (default " NN_DEFAULT_STREAM ")\n"
		"      --durable NAME     the durable consumer (default " DEFAULT_DURABLE ")\n"
#else
		"  (this build has no NATS support: libnats was not found when it was built)\n"
#endif
		"      --socket MOUNT     this node's daemon for the scoutfs mount MOUNT\n"
		"      --run-dir DIR      where the daemon's sockets are (" DEFAULT_RUN_DIR ")\n"
		"      --node NAME        the node's name with --socket (default: the hostname)\n"
		"      --path-map FROM=TO paths under FROM are kept under TO (repeat; for\n"
		"                         nodes that mount the filesystem elsewhere)\n"
		"      --flush-interval DUR  a transaction this often, once the one before\n"
		"                         is committed (1s)\n"
		"      --flush-files N    and at once when this many files have changes (50000)\n"
		"      --heat-period DUR, --heat-loss PCT   for a new database (1h, 10)\n"
		"  -h, --help             this text\n"
		"\n"
		"SIGUSR1 prints the counts on stderr; SIGTERM commits what is pending and exits.\n");
}

static void default_node(char *node, size_t size)
{
	char host[256] = "";
	size_t i;

	if (gethostname(host, sizeof(host) - 1) || !host[0])
		snprintf(host, sizeof(host), "localhost");
	for (i = 0; host[i] && i + 1 < size; i++) {
		char c = host[i];

		node[i] = (char)((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || c == '-' ? c : '_');
	}
	node[i] = 0;
}

/*
 * Hand what is pending (with the stream position pos, NULL none) to the
 * writer thread, which calls done(cookie, ...) when its transaction is
 * done; false (said) if that, or the transaction before, failed.
 */
static bool flush_start(struct ingest *in, const char *pos, ha_done_fn *done, void *cookie)
{
	if (!pos && !ha_pending(in->a))
		return true;
	if (ha_flush_async(in->a, pos ? "stream_seq" : NULL, pos, done, cookie)) {
		heat_store_error(in->h, "cannot commit");
		return false;
	}
	in->first_pending = 0;
	in->since_flush = 0;
	return true;
}

/* commit what is pending and wait until the writer has committed everything */
static bool flush(struct ingest *in)
{
	if (!flush_start(in, NULL, NULL, NULL))
		return false;
	if (ha_wait(in->a)) {
		heat_store_error(in->h, "cannot commit");
		return false;
	}
	return true;
}

/* what HA_FATAL from applying means: the writer failed (its reason), or out of memory */
static void fatal(struct ingest *in)
{
	if (ha_wait(in->a))
		heat_store_error(in->h, "cannot commit");
	else
		fprintf(stderr, PROG ": out of memory\n");
}

/* a transaction the writer could not commit ends the process now, not at the next one */
static bool writer_failed(struct ingest *in)
{
	if (ha_busy(in->a) || !ha_wait(in->a))
		return false;
	heat_store_error(in->h, "cannot commit");
	return true;
}

/*
 * Commit what is pending now?  Only with the writer idle, so that this
 * thread never waits for it and what comes while it writes is
 * coalesced further (the slower the database, the fewer rows a record
 * costs): a transaction can't begin before the one before it has
 * committed anyway.  Past the bounds of what may be held (--flush-files
 * files, FLUSH_MSGS_MAX records or messages) it is due all the same,
 * and this thread waits for the writer: the stream or the daemon holds
 * what comes meanwhile.
 */
static bool flush_due(struct ingest *in)
{
	if (!in->first_pending)
		return false;
	if (ha_pending_files(in->a) >= in->flush_files || in->since_flush >= FLUSH_MSGS_MAX)
		return true;
	return !ha_busy(in->a) && heat_now() - in->first_pending >= in->flush_ns;
}

static void changed(struct ingest *in)
{
	if (!in->first_pending)
		in->first_pending = heat_now();
}

/* ---- one node's daemon socket */

static int connect_daemon(struct ingest *in, char fsid[NP_FSID_LEN], char rid[NP_RID_LEN],
			  int *mnt_fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	*mnt_fd = open(in->socket_mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*mnt_fd < 0 || np_mount_ids(*mnt_fd, fsid, rid)) {
		fprintf(stderr, PROG ": %s: not a scoutfs mount (%s)\n", in->socket_mnt, strerror(errno));
		return -1;
	}
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s/notify.sock", in->run_dir,
		     fsid) >= (int)sizeof(sun.sun_path)) {
		fprintf(stderr, PROG ": --run-dir is too long\n");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		if (fd >= 0)
			close(fd);
		return -2;
	}
	return fd;
}

/* the records of one connection, until EOF or a signal; false on a failure */
static bool socket_records(struct ingest *in, int fd, struct np_cache *pc, uint64_t fsid,
			   const char *rid)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	nf_rec_t r;
	const char *path;
	size_t plen = 0;
	char err[160];
	ssize_t n;
	int ret;

	while (!stop_sig) {
		if (counts_sig) {
			counts_sig = 0;
			print_counts(in);
		}
		if (writer_failed(in) || (flush_due(in) && !flush_start(in, NULL, NULL, NULL)))
			return false;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, &r, sizeof(r), MSG_TRUNC);
		if (n == 0)
			return true;
		if (n != (ssize_t)sizeof(r)) {
			if (n < 0 && errno == EINTR)
				continue;
			fprintf(stderr, PROG ": a %zd byte message from the daemon: not a record\n", n);
			return n > 0;
		}
		path = r.ino ? np_path(pc, r.ino, r.op == SCOUTFS_NOTIFY_OP_OPEN, &plen) : NULL;
		ret = ha_rec(in->a, fsid, in->node, rid, &r, path, plen, err, sizeof(err));
		if (ret == HA_FATAL) {
			fatal(in);
			return false;
		}
		if (ret == HA_REJECT)
			fprintf(stderr, PROG ": record seq %" PRIu64 " refused: %s\n", (uint64_t)r.seq, err);
		in->since_flush++;
		changed(in);
	}
	return true;
}

static int run_socket(struct ingest *in)
{
	char fsid[NP_FSID_LEN];
	char rid[NP_RID_LEN];
	struct np_cache *pc;
	bool said = false;
	int mnt_fd = -1;
	int fd;
	bool ok;

	while (!stop_sig) {
		fd = connect_daemon(in, fsid, rid, &mnt_fd);
		if (fd == -1) {
			if (mnt_fd >= 0)
				close(mnt_fd);
			return EXIT_PERMANENT;
		}
		if (fd < 0) {
			if (!said)
				fprintf(stderr, PROG ": waiting for scoutfs-notifyd on %s/%s/notify.sock\n",
					in->run_dir, fsid);
			said = true;
			close(mnt_fd);
			usleep(500000);
			continue;
		}
		said = false;
		fprintf(stderr, PROG ": ingesting from %s (fsid %s, rid %s, node %s) into %s\n",
			in->socket_mnt, fsid, rid, in->node, g.db);
		pc = np_cache_new(mnt_fd, in->socket_mnt);
		ok = pc && socket_records(in, fd, pc, strtoull(fsid, NULL, 16), rid);
		np_cache_free(pc);
		close(fd);
		close(mnt_fd);
		if (!ok || !flush(in))
			return EXIT_TRANSIENT;
		if (!stop_sig)
			fprintf(stderr, PROG ": the daemon closed the connection: reconnecting\n");
	}
	return 0;
}

#ifdef HEAT_NATS
/* ---- the JetStream stream */

struct nats {
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	jsConsumerInfo *ci;
	uint64_t last_seq;	/* the highest stream position taken */
	uint64_t next_seq;	/* the next stream position to take, 0 if not known */
	uint64_t catch_from;	/* a killed run's messages to read again first (catch_up()) */
	uint64_t catch_to;
};

/* where a durable made anew starts: after what the database has */
static uint64_t db_position(struct ingest *in)
{
	char v[64];

	if (hs_meta_get(in->h, "stream", v, sizeof(v)) || strcmp(v, in->stream))
		return 0;
	if (hs_meta_get(in->h, "stream_seq", v, sizeof(v)))
		return 0;
	return strtoull(v, NULL, 10);
}

/*
 * A durable that exists carries on.  Ours acknowledge nothing: the
 * database's position, committed with what was applied, says what was
 * applied, and a server that keeps each delivery pending until it is
 * acknowledged (even one ack a transaction) took a third of the
 * ingest's rate one record a message.  So the server delivers no
 * message twice, and what it delivered to a killed run past the
 * database's position is read again first (catch_up()).  1 if it is
 * to be made anew (an earlier version's, of acks), 0, or the exit
 * status (said).
 */
static int existing_consumer(struct ingest *in, struct nats *n)
{
	const jsConsumerConfig *c = n->ci->Config;
	uint64_t pos;

	if (!c->FilterSubject || strcmp(c->FilterSubject, HA_SUBJECT_PREFIX ".>") ||
	    c->DeliverSubject) {
		fprintf(stderr, PROG ": durable %s of stream %s exists, not made by this program"
			" (its filter or delivery differ)\n", in->durable, in->stream);
		return EXIT_PERMANENT;
	}
	if (c->AckPolicy != js_AckNone)
		return 1;
	pos = db_position(in);
	if (n->ci->Delivered.Stream > pos) {
		n->catch_from = pos + 1;
		n->catch_to = n->ci->Delivered.Stream;
	}
	n->next_seq = pos ? pos + 1 : 0;
	return 0;
}

/*
 * An earlier version's durable (acknowledged) is made anew after the
 * database's position, which says what was applied.
 */
static int replace_consumer(struct ingest *in, struct nats *n)
{
	jsErrCode jerr = 0;

	fprintf(stderr, PROG ": durable %s of stream %s is acknowledged (an earlier version's):"
		" making it anew\n", in->durable, in->stream);
	jsConsumerInfo_Destroy(n->ci);
	n->ci = NULL;
	if (js_DeleteConsumer(n->js, in->stream, in->durable, NULL, &jerr) != NATS_OK) {
		fprintf(stderr, PROG ": cannot delete durable %s: %s\n", in->durable,
			nats_GetLastError(NULL));
		return EXIT_TRANSIENT;
	}
	return 0;
}

static int make_consumer(struct ingest *in, struct nats *n)
{
	jsConsumerConfig cc;
	jsErrCode jerr = 0;
	uint64_t pos;
	natsStatus s;
	int ret;

	s = js_GetConsumerInfo(&n->ci, n->js, in->stream, in->durable, NULL, &jerr);
	if (s == NATS_OK) {
		ret = existing_consumer(in, n);
		if (ret != 1)
			return ret;
		ret = replace_consumer(in, n);
		if (ret)
			return ret;
	}
	jsConsumerConfig_Init(&cc);
	cc.Durable = in->durable;
	cc.FilterSubject = HA_SUBJECT_PREFIX ".>";
	cc.AckPolicy = js_AckNone;
	pos = db_position(in);
	n->next_seq = pos ? pos + 1 : 0;
	if (pos) {
		cc.DeliverPolicy = js_DeliverByStartSequence;
		cc.OptStartSeq = pos + 1;
	} else {
		cc.DeliverPolicy = js_DeliverAll;
	}
	jerr = 0;
	s = js_AddConsumer(&n->ci, n->js, in->stream, &cc, NULL, &jerr);
	if (s != NATS_OK) {
		const char *text = nats_GetLastError(NULL);

		fprintf(stderr, PROG ": cannot make durable %s on stream %s: %s%s\n", in->durable,
			in->stream, text ? text : natsStatus_GetText(s),
			jerr == JSStreamNotFoundErr ? " (no forwarder has created it yet?)" : "");
		return jerr == JSStreamNotFoundErr || s == NATS_NOT_PERMITTED ? EXIT_PERMANENT :
									       EXIT_TRANSIENT;
	}
	fprintf(stderr, PROG ": made durable %s on stream %s, from stream message %" PRIu64 "\n",
		in->durable, in->stream, pos + 1);
	return 0;
}

static int nats_setup(struct ingest *in, struct nats *n)
{
	jsOptions jso;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;
	int ret;

	in->nopts.name = PROG;
	ret = nn_connect(&n->nc, &in->nopts, true, NULL, NULL, NULL, PROG);
	if (ret)
		return ret;
	jsOptions_Init(&jso);
	jso.Wait = 10000;
	if (natsConnection_JetStream(&n->js, n->nc, &jso) != NATS_OK) {
		fprintf(stderr, PROG ": JetStream: %s\n", nats_GetLastError(NULL));
		return EXIT_TRANSIENT;
	}
	if (hs_meta_set(in->h, "stream", in->stream)) {
		return heat_store_error(in->h, "cannot write the stream's name");
	}
	ret = make_consumer(in, n);
	if (ret)
		return ret;
	jsSubOptions_Init(&so);
	so.Stream = in->stream;
	so.Consumer = n->ci->Name;
	s = js_PullSubscribe(&n->sub, n->js, HA_SUBJECT_PREFIX ".>", in->durable, NULL, &so, &jerr);
	if (s != NATS_OK) {
		fprintf(stderr, PROG ": cannot bind to durable %s: %s\n", in->durable,
			nats_GetLastError(NULL));
		return EXIT_TRANSIENT;
	}
	fprintf(stderr, PROG ": ingesting from stream %s (durable %s) into %s\n", in->stream,
		in->durable, g.db);
	return 0;
}

/*
 * Hand what is pending and, if messages were taken since the last
 * commit, the stream position to the writer thread, which commits them while
 * this thread takes what comes next; false if that, or the transaction
 * before, failed (said).
 */
static bool nats_flush(struct ingest *in, struct nats *n)
{
	char pos[32];

	if (!in->since_flush)
		return flush_start(in, NULL, NULL, NULL);
	snprintf(pos, sizeof(pos), "%" PRIu64, n->last_seq);
	return flush_start(in, pos, NULL, NULL);
}

/*
 * Apply m, the message at stream position seq; false on a failure
 * (said).  m stays in its list, destroyed with it: libnats 3.4 hands a
 * destroyed message to its garbage collector thread and wakes that
 * thread whenever its queue was empty, so a destroy between two
 * messages' parsing was a wakeup and two context switches a message
 * (7% of the ingest's time on pthread_cond_signal() one record a
 * message); a list destroyed at once wakes it a few times a list.
 */
static bool take(struct ingest *in, struct nats *n, natsMsg *m, uint64_t seq)
{
	const char *id = NULL;
	char err[240];
	int ret;

	natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
	ret = ha_msg(in->a, natsMsg_GetSubject(m), strlen(natsMsg_GetSubject(m)), id,
		     id ? strlen(id) : 0, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), err,
		     sizeof(err));
	if (ret == HA_FATAL) {
		fatal(in);
		return false;
	}
	if (ret == HA_REJECT)
		fprintf(stderr, PROG ": ignoring stream message %" PRIu64 ": %s\n", seq, err);
	/* the highest: a message delivered again (a killed run's) comes after later ones */
	if (seq > n->last_seq)
		n->last_seq = seq;
	in->since_flush++;
	changed(in);
	return true;
}

/*
 * How long the main thread waits for the next fetched list: with
 * changes pending, what is left of --flush-interval, but 100ms at most
 * (a tenth of the default).
 */
static int64_t fetch_wait_ms(struct ingest *in)
{
	int64_t left;

	if (!in->first_pending)
		return 1000;
	left = (in->flush_ns - (heat_now() - in->first_pending)) / 1000000;
	return left < 10 ? 10 : left > 100 ? 100 : left;
}

/*
 * Commit now: on flush_due()'s rules, or, with the writer idle, after
 * FLUSH_MSGS messages or once the stream is drained (a fetch came back
 * short, or no list came within fetch_wait_ms(): 100ms at most), so that what came is in the index without waiting for the
 * whole interval.
 */
static bool nats_flush_due(struct ingest *in, natsStatus s, int count)
{
	if (!in->first_pending)
		return false;
	if (flush_due(in))
		return true;
	return (in->since_flush >= FLUSH_MSGS || s == NATS_TIMEOUT ||
		(s == NATS_OK && count < FETCH_MAX)) && !ha_busy(in->a);
}

/*
 * The fetch thread.  libnats 3.4's pull fetch is synchronous: one thread
 * that fetches and applies leaves the stream idle while it applies, and
 * itself idle while the next batch comes.  This one fetches ahead, at
 * most FETCH_AHEAD lists, which the main thread takes in order; at the
 * end the main thread applies whatever it fetched too, so that nothing
 * fetched has to be read again by the next run.  Its
 * fetches wait long (FETCH_WAIT_MS; the first of each returns at once
 * with what the stream has): a pull request that expires while the
 * server is still delivering it leaves messages pending, which libnats
 * 3.4 mishandles (see nn_fetch()).  The main thread keeps the flush
 * timing with its own shorter waits for the next list.
 */
#define FETCH_AHEAD	2
#define FETCH_WAIT_MS	1000

struct fetched {
	natsMsgList list;
	natsStatus s;
};

struct fetcher {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* a list was fetched or taken, or stop */
	natsSubscription *sub;
	struct fetched q[FETCH_AHEAD];
	int head;
	int n;
	bool stop;
};

static void *fetch_main(void *arg)
{
	struct fetcher *f = arg;
	struct fetched x;
	jsErrCode jerr;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		if (f->n == FETCH_AHEAD) {
			pthread_cond_wait(&f->cv, &f->mu);
			continue;
		}
		pthread_mutex_unlock(&f->mu);
		memset(&x, 0, sizeof(x));
		jerr = 0;
		x.s = nn_fetch(&x.list, f->sub, FETCH_MAX, FETCH_WAIT_MS, &jerr, PROG);
		/* reconnecting (the library does it), or the server refused: not a busy loop */
		if (x.s != NATS_OK && x.s != NATS_TIMEOUT)
			usleep(200000);
		pthread_mutex_lock(&f->mu);
		f->q[(f->head + f->n) % FETCH_AHEAD] = x;
		f->n++;
		pthread_cond_broadcast(&f->cv);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static bool fetch_start(struct fetcher *f, natsSubscription *sub)
{
	int err;

	f->sub = sub;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	err = ha_thread_start(&f->th, fetch_main, f);
	if (err) {
		fprintf(stderr, PROG ": cannot start the fetch thread: %s\n", strerror(err));
		pthread_cond_destroy(&f->cv);
		pthread_mutex_destroy(&f->mu);
	}
	return !err;
}

/* the next list fetched into *out, waiting up to wait_ms for it; false if none came */
static bool fetch_next(struct fetcher *f, struct fetched *out, int64_t wait_ms)
{
	struct timespec ts;
	bool got;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (wait_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&f->mu);
	while (!f->n && pthread_cond_timedwait(&f->cv, &f->mu, &ts) != ETIMEDOUT)
		;
	got = f->n > 0;
	if (got) {
		*out = f->q[f->head];
		f->head = (f->head + 1) % FETCH_AHEAD;
		f->n--;
		pthread_cond_broadcast(&f->cv);
	}
	pthread_mutex_unlock(&f->mu);
	return got;
}

/* stop the fetch thread once its fetch is back: what it fetched stays queued */
static void fetch_stop(struct fetcher *f)
{
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->th, NULL);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
}

/* a catch-up list, taken up to position to; false once past it or on a failure */
static bool catch_list(struct ingest *in, struct nats *n, natsMsgList *list, uint64_t to,
		       bool *ok)
{
	bool more = true;
	uint64_t seq;
	int i;

	for (i = 0; i < list->Count; i++) {
		seq = nn_msg_seq(list->Msgs[i], NULL);
		if (*ok && more && seq <= to) {
			*ok = take(in, n, list->Msgs[i], seq);
		} else {
			more = false;
		}
	}
	natsMsgList_Destroy(list);
	return more && *ok;
}

/* an ephemeral consumer of the stream from position from */
static natsStatus catch_sub(struct ingest *in, struct nats *n, uint64_t from,
			    natsSubscription **sub, jsConsumerInfo **ci)
{
	jsConsumerConfig cc;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	jsConsumerConfig_Init(&cc);
	cc.FilterSubject = HA_SUBJECT_PREFIX ".>";
	cc.AckPolicy = js_AckNone;
	cc.DeliverPolicy = js_DeliverByStartSequence;
	cc.OptStartSeq = from;
	cc.InactiveThreshold = 60LL * 1000000000LL;
	s = js_AddConsumer(ci, n->js, in->stream, &cc, NULL, &jerr);
	if (s != NATS_OK)
		return s;
	jsSubOptions_Init(&so);
	so.Stream = in->stream;
	so.Consumer = (*ci)->Name;
	return js_PullSubscribe(sub, n->js, HA_SUBJECT_PREFIX ".>", NULL, NULL, &so, &jerr);
}

/*
 * The durable delivers no message twice (existing_consumer()), so what
 * it delivered and this process did not apply is read again here, from
 * an ephemeral consumer: what it delivered to a run killed before it
 * committed them, and positions a run's deliveries skipped (messages
 * the server sent while the connection went down, or that the stream
 * no longer has).  Until a message past them, or none is left in the
 * stream.  0 or the exit status (said).
 */
static int catch_up(struct ingest *in, struct nats *n, uint64_t from, uint64_t to,
		    const char *why)
{
	natsSubscription *sub = NULL;
	jsConsumerInfo *made = NULL;
	jsConsumerInfo *ci = NULL;
	natsMsgList list;
	jsErrCode jerr;
	natsStatus s;
	bool ok = true;
	bool more = true;

	fprintf(stderr, PROG ": reading stream messages %" PRIu64 " to %" PRIu64 " again (%s)\n",
		from, to, why);
	s = catch_sub(in, n, from, &sub, &made);
	while (s == NATS_OK && more && ok && !stop_sig) {
		memset(&list, 0, sizeof(list));
		jerr = 0;
		s = nn_fetch(&list, sub, FETCH_MAX, FETCH_WAIT_MS, &jerr, PROG);
		if (s == NATS_OK && list.Count) {
			more = catch_list(in, n, &list, to, &ok);
			ok = ok && (!nats_flush_due(in, s, FETCH_MAX) || nats_flush(in, n));
			continue;
		}
		natsMsgList_Destroy(&list);
		/* nothing came: the rest of the range is gone, or the server is slow */
		s = js_GetConsumerInfo(&ci, n->js, in->stream, made->Name, NULL, &jerr);
		more = s == NATS_OK && ci->NumPending > 0;
		jsConsumerInfo_Destroy(ci);
		ci = NULL;
	}
	natsSubscription_Destroy(sub);
	if (made)
		js_DeleteConsumer(n->js, in->stream, made->Name, NULL, NULL);
	jsConsumerInfo_Destroy(made);
	if (s != NATS_OK && s != NATS_TIMEOUT) {
		fprintf(stderr, PROG ": cannot read stream messages %" PRIu64 " to %" PRIu64 " again: %s\n",
			from, to, nats_GetLastError(NULL));
		return EXIT_TRANSIENT;
	}
	if (ok && to >= n->next_seq)
		n->next_seq = to + 1;
	return ok ? 0 : EXIT_TRANSIENT;
}

/*
 * Take every message of a fetched list, in order; a position the
 * durable skipped is read again first (catch_up()).  The messages
 * taken, -1 on a failure (said).
 */
static int take_list(struct ingest *in, struct nats *n, struct fetched *x)
{
	bool ok = true;
	uint64_t seq;
	int i;

	/* never past what we asked for, whatever the list says */
	for (i = 0; x->s == NATS_OK && i < x->list.Count && i < FETCH_MAX && ok; i++) {
		seq = nn_msg_seq(x->list.Msgs[i], NULL);
		if (n->next_seq && seq > n->next_seq &&
		    catch_up(in, n, n->next_seq, seq - 1, "skipped by the durable's delivery")) {
			ok = false;
			break;
		}
		if (seq >= n->next_seq)
			n->next_seq = seq + 1;
		ok = take(in, n, x->list.Msgs[i], seq);
	}
	natsMsgList_Destroy(&x->list);
	return ok ? i : -1;
}

/*
 * After fetch_stop(): what was fetched ahead, applied (apply true) or
 * dropped; false if applying failed.
 */
static bool fetch_drain(struct ingest *in, struct nats *n, struct fetcher *f, bool apply)
{
	for (; f->n; f->n--, f->head = (f->head + 1) % FETCH_AHEAD) {
		if (apply)
			apply = take_list(in, n, &f->q[f->head]) >= 0;
		else
			natsMsgList_Destroy(&f->q[f->head].list);
	}
	return apply;
}

static int nats_loop(struct ingest *in, struct nats *n)
{
	struct fetcher f = { 0 };
	struct fetched x;
	natsStatus s;
	bool ok = true;
	int i;

	if (n->catch_to && catch_up(in, n, n->catch_from, n->catch_to,
				    "taken, not committed, by an earlier run"))
		return EXIT_TRANSIENT;
	if (!fetch_start(&f, n->sub))
		return EXIT_TRANSIENT;
	while (!stop_sig && ok) {
		if (counts_sig) {
			counts_sig = 0;
			print_counts(in);
		}
		s = NATS_TIMEOUT;
		i = 0;
		if (fetch_next(&f, &x, fetch_wait_ms(in))) {
			s = x.s;
			i = take_list(in, n, &x);
		}
		ok = i >= 0 && !writer_failed(in) && (!nats_flush_due(in, s, i) || nats_flush(in, n));
	}
	fetch_stop(&f);
	/* what was fetched ahead is applied too, then with what is pending committed */
	ok = fetch_drain(in, n, &f, ok);
	return ok && nats_flush(in, n) && flush(in) ? 0 : EXIT_TRANSIENT;
}

static int run_nats(struct ingest *in)
{
	struct nats n = { 0 };
	int ret;

	ret = nats_setup(in, &n);
	if (!ret)
		ret = nats_loop(in, &n);
	/* the writer may still be writing its last transaction */
	ha_wait(in->a);
	if (n.sub)
		natsSubscription_Destroy(n.sub);
	jsConsumerInfo_Destroy(n.ci);
	jsCtx_Destroy(n.js);
	if (n.nc)
		natsConnection_FlushTimeout(n.nc, 2000);
	natsConnection_Destroy(n.nc);
	nats_Close();
	return ret;
}
#endif

/* ---- options */

static int opt_error(const char *what, const char *arg)
{
	fprintf(stderr, PROG ": ingest: %s, not '%s'\n", what, arg);
	return EXIT_USAGE;
}

static int ingest_opts(struct ingest *in, int argc, char **argv, double *period, double *loss)
{
	double d;
	int64_t n;
	int i;

	for (i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#ifdef HEAT_NATS
		int r = 0;

		if (v && o[0] == '-' && (!strcmp(o, "-s") || !strncmp(o, "--", 2))) {
			static const struct { const char *name; int c; } nn[] = {
				{ "-s", 's' }, { "--server", 's' }, { "--creds", 1000 },
				{ "--user", 1001 }, { "--password-file", 1002 }, { "--tls-ca", 1003 },
				{ "--tls-cert", 1004 }, { "--tls-key", 1005 } };
			size_t k;

			for (k = 0; k < sizeof(nn) / sizeof(nn[0]); k++)
				if (!strcmp(o, nn[k].name))
					r = nn_opt(&in->nopts, nn[k].c, v, PROG);
			if (r < 0)
				return EXIT_USAGE;
			if (r > 0) {
				in->nats = true;
				i++;
				continue;
			}
		}
		if (!strcmp(o, "--stream") && v && ha_token_ok(v, strlen(v))) {
			in->stream = argv[++i];
			continue;
		}
		if (!strcmp(o, "--durable") && v && ha_token_ok(v, strlen(v))) {
			in->durable = argv[++i];
			continue;
		}
#endif
		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			return -1;
		} else if (!strcmp(o, "--socket") && v) {
			in->socket_mnt = argv[++i];
		} else if (!strcmp(o, "--run-dir") && v) {
			in->run_dir = argv[++i];
		} else if (!strcmp(o, "--node") && v) {
			if (!ha_token_ok(v, strlen(v)))
				return opt_error("--node takes 1 to 64 letters, digits, '-' or '_'", v);
			snprintf(in->node, sizeof(in->node), "%s", argv[++i]);
		} else if (!strcmp(o, "--path-map") && v) {
			if (ha_map_add(in->a, argv[++i]))
				return opt_error("--path-map needs /FROM=/TO", v);
		} else if (!strcmp(o, "--flush-interval") && v) {
			d = heat_duration(argv[++i]);
			if (d <= 0 || d > 3600)
				return opt_error("--flush-interval needs a duration up to 1h", v);
			in->flush_ns = (int64_t)(d * 1e9);
		} else if (!strcmp(o, "--flush-files") && v) {
			n = heat_count(argv[++i]);
			if (n < 0)
				return opt_error("--flush-files needs a positive number", v);
			in->flush_files = (size_t)n;
		} else if (!strcmp(o, "--heat-period") && v) {
			*period = heat_duration(argv[++i]);
			if (*period <= 0)
				return opt_error("--heat-period needs a duration", v);
		} else if (!strcmp(o, "--heat-loss") && v) {
			*loss = strtod(argv[++i], NULL) / 100;
			if (!(*loss > 0 && *loss < 1))
				return opt_error("--heat-loss needs a percentage over 0 and under 100", v);
		} else {
			fprintf(stderr, PROG ": ingest: unknown or incomplete option '%s'\n", o);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!!in->socket_mnt == in->nats) {
		fprintf(stderr, PROG ": ingest needs either --server (NATS) or --socket MOUNT\n");
		return EXIT_USAGE;
	}
	return 0;
}

int cmd_ingest(int argc, char **argv)
{
	struct ingest in = { .run_dir = DEFAULT_RUN_DIR, .flush_ns = 1000000000LL,
			     .flush_files = 50000 };
	double period = 0;
	double loss = 0;
	int status = 0;

#ifdef HEAT_NATS
	in.stream = NN_DEFAULT_STREAM;
	in.durable = DEFAULT_DURABLE;
#endif
	signals();	/* a SIGTERM while it starts stops it cleanly too */
	in.a = ha_new(NULL, 0, 0);	/* for --path-map; the real one below */
	if (!in.a)
		return EXIT_TRANSIENT;
	status = ingest_opts(&in, argc, argv, &period, &loss);
	if (status)
		goto out;
#ifdef HEAT_NATS
	if (in.nats && nn_check(&in.nopts, PROG)) {
		status = EXIT_USAGE;
		goto out;
	}
#endif
	if (!in.node[0])
		default_node(in.node, sizeof(in.node));
	in.h = heat_open(false, period, loss, &status);
	if (!in.h)
		goto out;
	status = ha_rebind(in.a, in.h);
	if (status == 0 && ha_load(in.a))
		status = heat_store_error(in.h, "cannot read the mounts");
	if (status)
		goto out;
#ifdef HEAT_NATS
	if (in.nats)
		status = run_nats(&in);
	else
#endif
		status = run_socket(&in);
	print_counts(&in);
out:
#ifdef HEAT_NATS
	nn_free(&in.nopts);
#endif
	ha_free(in.a);
	hs_close(in.h);
	return status < 0 ? 0 : status;
}
