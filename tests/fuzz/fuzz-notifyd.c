/*
 * libFuzzer target: what scoutfs-notifyd does with what its clients
 * send, through its own code: accept_clients() (a client's ATTACH),
 * check_clients() with client_request() (every message a client sends
 * is judged there) and broadcast(), on real SOCK_SEQPACKET connections
 * to a socket made by its bind_socket().  The program is included
 * whole, its main() renamed.
 *
 * The input is a script, one byte an action (the low 3 bits) on a
 * client (the rest), some followed by their bytes: connect; send a
 * message of any bytes (its length in the next two bytes, its bytes
 * next); send a request for max_recs from the next byte (0 to 251, or
 * 256, 257, 65536, 2^32-1); send a request with one thing wrong (the
 * next byte says what); close; shut down writing; broadcast records (1
 * to 256); let the daemon look at its clients.  Whether a message is a
 * good request, and what it must be granted, is judged here from
 * docs/interface.md ("Batches"), not by the daemon's parser.
 * Properties, beyond ASan, UBSan and LeakSanitizer:
 *
 * - every client receives its ATTACH first, as one 64-byte message,
 *   then every record broadcast since it connected, each once, in order,
 *   whatever the others did;
 * - a client that sent nothing gets only 64-byte messages;
 * - a client whose first message is a good request, once the daemon
 *   has looked, gets a reply granting the smaller of what it asked and
 *   256, before any record broadcast after that look (those before it
 *   come one a message); from the reply on, each broadcast of n
 *   records reaches it in ceil(n / granted) messages, each 1 to granted
 *   64-byte records;
 * - a client that sent anything else first, or a second message, gets a
 *   refusal reply (status 1, max_recs 0, a reason) and is closed (EOF)
 *   once the daemon has looked at it, one message a look; a client that
 *   hung up (close or shutdown) is gone once the daemon has looked, and
 *   a broadcast drops only a client that closed;
 * - the daemon keeps no client the script does not know.
 */
#include "fuzzlib.h"

#define main notifyd_main
#include "scoutfs-notifyd.c"
#undef main

#define LIVE_MAX	16
#define RECS_MAX	256

enum { R_NONE, R_GRANT, R_REFUSE };

struct tclient {
	int fd;			/* our end, -1 once closed */
	int dfd;		/* the daemon's end */
	bool hup;		/* closed or shut down writing */
	bool gone;		/* the daemon must have closed it */
	bool asked;		/* the daemon has read a message of it */
	int sent;		/* messages sent */
	int queued;		/* of those, the daemon has not read */
	uint32_t first;		/* what the first message must be granted, 0: refused */
	int reply;		/* the reply it must receive next */
	uint32_t max;		/* records a message may hold now */
	uint64_t next;		/* the seq it must receive next */
	int msgs;		/* record messages received since counted */
};

static char sock_path[128];
static char sock_dir[64];
static int lfd = -1;
static uint64_t seq;
static struct tclient tc[LIVE_MAX];
static int ntc;
static unsigned char rbuf[NS_MAX_RECS * NS_REC_LEN + NS_REPLY_LEN];

static void cleanup(void)
{
	unlink(sock_path);
	rmdir(sock_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	stderr = fopen("/dev/null", "w");	/* its log lines */
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/fuzz-notifyd-XXXXXX");
	FZ_ASSERT(mkdtemp(sock_dir), "mkdtemp");
	snprintf(sock_path, sizeof(sock_path), "%s/notify.sock", sock_dir);
	lfd = bind_socket(sock_path);
	FZ_ASSERT(lfd >= 0, "bind_socket");
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	attach_rec = (rec_t){ .seq = 1, .op = SCOUTFS_NOTIFY_OP_ATTACH };
	have_attach = true;
	return 0;
}

static int daemon_index(int dfd)
{
	int i;

	for (i = 0; i < nr_clients; i++)
		if (clients[i].fd == dfd)
			return i;
	return -1;
}

static void connect_one(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int before = nr_clients;
	rec_t r;
	int fd;

	if (ntc == LIVE_MAX)
		return;
	strcpy(sun.sun_path, sock_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	FZ_ASSERT(fd >= 0 && !connect(fd, (struct sockaddr *)&sun, sizeof(sun)), "connect");
	accept_clients(lfd);
	FZ_ASSERT(nr_clients == before + 1, "the daemon took %d clients for one", nr_clients - before);
	/* its first message: the ATTACH, and nothing else yet */
	FZ_ASSERT(recv(fd, &r, sizeof(r) + 1, MSG_DONTWAIT | MSG_TRUNC) == sizeof(r) &&
		  r.op == SCOUTFS_NOTIFY_OP_ATTACH && r.seq == attach_rec.seq, "no ATTACH first");
	tc[ntc++] = (struct tclient){ .fd = fd, .dfd = clients[nr_clients - 1].fd, .max = 1,
				      .next = seq + 1 };
}

/* a reply, which t must have been owed */
static void check_reply(struct tclient *t, const unsigned char *m)
{
	static const unsigned char zeros[NS_REASON_LEN];
	const unsigned char *reason = m + 16;

	FZ_ASSERT(t->reply != R_NONE, "a reply nobody asked for (or a second one)");
	FZ_ASSERT(!memcmp(m, "SNRP", 4) && fz_get16(m + 4) == 1 && fz_get32(m + 12) == 0,
		  "a malformed reply");
	if (t->reply == R_GRANT) {
		FZ_ASSERT(fz_get16(m + 6) == 0 && fz_get32(m + 8) == t->first,
			  "reply status %u max_recs %u to a request due %u", fz_get16(m + 6),
			  fz_get32(m + 8), t->first);
		FZ_ASSERT(!memcmp(reason, zeros, sizeof(zeros)), "a granted reply with a reason");
		t->max = t->first;
	} else {
		FZ_ASSERT(fz_get16(m + 6) == 1 && fz_get32(m + 8) == 0,
			  "reply status %u max_recs %u to a message that is refused", fz_get16(m + 6),
			  fz_get32(m + 8));
		FZ_ASSERT(reason[0] && memchr(reason, 0, NS_REASON_LEN),
			  "a refusal without a NUL-terminated reason");
	}
	t->reply = R_NONE;
}

/* a message of records: the next ones, no more than t takes a message */
static void check_recs(struct tclient *t, const unsigned char *m, ssize_t n)
{
	rec_t r;
	ssize_t i;

	FZ_ASSERT(t->reply == R_NONE, "records where the reply was due");
	FZ_ASSERT(n > 0 && n % NS_REC_LEN == 0 && n / NS_REC_LEN <= (ssize_t)t->max,
		  "a message of %zd bytes to a client that takes %u records a message", n, t->max);
	for (i = 0; i < n; i += NS_REC_LEN) {
		memcpy(&r, m + i, sizeof(r));
		FZ_ASSERT(r.seq == t->next && r.op == SCOUTFS_NOTIFY_OP_READ,
			  "seq %llu where %llu was next", (unsigned long long)r.seq,
			  (unsigned long long)t->next);
		t->next++;
	}
	t->msgs++;
}

/* what a client has received since: the reply it was owed, records, the EOF of a gone one */
static void drain(struct tclient *t)
{
	ssize_t n;

	if (t->fd < 0)
		return;
	for (;;) {
		n = recv(t->fd, rbuf, sizeof(rbuf), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && errno == ECONNRESET)
			continue;	/* closed with messages unread: what came first is queued */
		if (n < 0) {
			FZ_ASSERT(errno == EAGAIN, "recv: %s", strerror(errno));
			FZ_ASSERT(t->reply == R_NONE, "no reply to its message");
			FZ_ASSERT(!t->gone, "a client the daemon dropped is not closed");
			return;
		}
		if (n == 0) {
			FZ_ASSERT(t->gone, "EOF (or an empty message) on a client the daemon keeps");
			FZ_ASSERT(t->reply == R_NONE, "closed without the reply");
			return;
		}
		if (n == NS_REPLY_LEN)
			check_reply(t, rbuf);
		else
			check_recs(t, rbuf, n);
	}
}

/* forget script client k (its daemon end may be a new client's soon) */
static void forget(int k)
{
	if (tc[k].fd >= 0)
		close(tc[k].fd);
	ntc--;
	tc[k] = tc[ntc];
}

static void broadcast_some(unsigned n)
{
	static rec_t recs[RECS_MAX];
	struct tclient *t;
	unsigned i;
	int k;

	for (i = 0; i < n; i++)
		recs[i] = (rec_t){ .seq = ++seq, .op = SCOUTFS_NOTIFY_OP_READ, .len = 1 };
	broadcast(recs, (int)n);
	for (k = 0; k < ntc; k++) {
		t = &tc[k];
		/* a send to one that closed may drop it already */
		if (daemon_index(t->dfd) < 0) {
			FZ_ASSERT(t->fd < 0, "a broadcast dropped a client that can still read");
			forget(k--);
			continue;
		}
		t->msgs = 0;
		drain(t);
		if (t->fd < 0)
			continue;
		FZ_ASSERT(t->next == seq + 1, "a client is missing records (%llu where %llu was next)",
			  (unsigned long long)t->next, (unsigned long long)seq + 1);
		FZ_ASSERT(t->msgs == (int)((n + t->max - 1) / t->max),
			  "%u records in %d messages to a client that takes %u a message", n, t->msgs,
			  t->max);
	}
}

/* what the daemon does with t as it looks, from what t did */
static void judge(struct tclient *t)
{
	if (t->hup) {
		t->gone = true;		/* without a reply */
		return;
	}
	if (!t->queued)
		return;
	t->queued--;
	t->reply = !t->asked && t->first ? R_GRANT : R_REFUSE;
	t->gone = t->reply == R_REFUSE;
	t->asked = true;
}

/* the daemon looked: who had to go is gone, with what it was owed, everybody else is there */
static void look(void)
{
	struct tclient *t;
	int known = 0;
	int k;

	check_clients();
	for (k = 0; k < ntc; k++) {
		t = &tc[k];
		judge(t);
		FZ_ASSERT((daemon_index(t->dfd) < 0) == t->gone, "a client that %s",
			  t->gone ? "had to go stays" : "did nothing wrong was dropped");
		drain(t);
		if (t->gone) {
			forget(k--);
			continue;
		}
		known++;
	}
	FZ_ASSERT(nr_clients == known, "the daemon has %d clients, %d known", nr_clients, known);
}

static void send_msg(struct tclient *t, const unsigned char *m, size_t len)
{
	if (!t || t->fd < 0 || send(t->fd, m, len, MSG_DONTWAIT) != (ssize_t)len)
		return;
	if (t->sent++ == 0)
		t->first = fz_model_grant(m, len);
	t->queued++;
}

/* a request for max_recs, built here from the documented layout */
static size_t request(unsigned char *m, uint32_t max_recs)
{
	static const uint16_t version = 1;

	memset(m, 0, 17);
	memcpy(m, "SNRQ", 4);
	memcpy(m + 4, &version, 2);
	memcpy(m + 8, &max_recs, 4);
	return 16;
}

/* a request for max_recs from byte v: 0 to 251, then the large ones */
static void send_request(struct tclient *t, uint8_t v)
{
	static const uint32_t large[] = { 256, 257, 65536, UINT32_MAX };
	unsigned char m[17];

	send_msg(t, m, request(m, v < 252 ? v : large[v - 252]));
}

/* a request with one thing wrong, what from byte v */
static void send_bad_request(struct tclient *t, uint8_t v)
{
	unsigned char m[17];
	size_t len = request(m, 4);

	switch (v % 8) {
	case 0: m[3] = 'P'; break;		/* a reply's magic */
	case 1: m[4] = 2; break;		/* version 2 */
	case 2: m[4] = 0; break;		/* version 0 */
	case 3: m[6 + v / 8 % 2] = 1; break;	/* flags */
	case 4: m[12 + v / 8 % 4] = 1; break;	/* reserved */
	case 5: len--; break;			/* 15 bytes */
	case 6: len++; break;			/* 17 bytes */
	default: memset(m + 8, 0, 4); break;	/* max_recs 0 */
	}
	send_msg(t, m, len);
}

static void end_all(void)
{
	int k;

	look();
	broadcast_some(1);
	while (nr_clients)
		drop_client(nr_clients - 1, "shutdown");
	for (k = 0; k < ntc; k++)
		if (tc[k].fd >= 0)
			close(tc[k].fd);
	ntc = 0;
	seq = 1;
}

/* the bytes of a message: two bytes of length (under 64 KiB), then its bytes */
static void send_bytes(struct tclient *t, const uint8_t *data, size_t size, size_t *i)
{
	size_t len = 0;
	size_t have;
	unsigned char *buf;

	if (size - *i >= 2) {
		len = (size_t)(data[*i] | data[*i + 1] << 8);
		*i += 2;
	}
	have = len < size - *i ? len : size - *i;
	buf = calloc(1, len ? len : 1);
	FZ_ASSERT(buf, "calloc");
	memcpy(buf, data + *i, have);
	*i += have;
	send_msg(t, buf, len);
	free(buf);
}

static void hang_up(struct tclient *t, bool all)
{
	if (!t || t->fd < 0)
		return;
	if (all) {
		close(t->fd);
		t->fd = -1;
	} else {
		shutdown(t->fd, SHUT_WR);
	}
	t->hup = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned counts[32] = { 1, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64,
					     65, 100, 127, 128, 129, 200, 255, 256, 1, 2, 3, 4,
					     6, 9, 12, 256 };
	struct tclient *t;
	uint8_t b;
	size_t i = 0;

	seq = 1;
	while (i < size) {
		b = data[i++];
		t = ntc ? &tc[(b >> 3) % ntc] : NULL;
		switch (b & 7) {
		case 0:
			connect_one();
			break;
		case 1:
			send_bytes(t, data, size, &i);
			break;
		case 2:
		case 3:
			hang_up(t, (b & 7) == 2);
			break;
		case 4:
			broadcast_some(counts[b >> 3]);
			break;
		case 6:
		case 7:
			if (i < size) {
				if ((b & 7) == 6)
					send_request(t, data[i]);
				else
					send_bad_request(t, data[i]);
				i++;
			}
			break;
		default:
			look();
			break;
		}
	}
	end_all();
	return 0;
}
