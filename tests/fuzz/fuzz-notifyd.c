/*
 * libFuzzer target: what scoutfs-notifyd does with what its clients
 * send, through its own code: accept_clients() (a client's ATTACH),
 * check_clients() with client_msg() (every byte a client sends is
 * judged there) and broadcast(), on real SOCK_SEQPACKET connections to
 * a socket made by its bind_socket().  The program is included whole,
 * its main() renamed.
 *
 * The input is a script, one byte an action (the low 3 bits) on a
 * client (the rest), some followed by their bytes: connect; send a
 * message (its length in the next two bytes, its bytes next); close;
 * shut down writing; broadcast records; let the daemon look at its
 * clients; hand bytes to client_msg() alone.  Properties, beyond ASan,
 * UBSan and LeakSanitizer:
 *
 * - a client that sent anything (any bytes, any length, empty) or hung
 *   up is gone once the daemon has looked; the daemon keeps no client
 *   the script does not know;
 * - a client that sent nothing stays and receives its ATTACH first,
 *   then every record broadcast since it connected, each once, in order,
 *   each one 64-byte message, whatever the others did.
 */
#include "fuzzlib.h"

#define main notifyd_main
#include "scoutfs-notifyd.c"
#undef main

#define LIVE_MAX	16
#define RECS_MAX	8

enum { SILENT, MUST_GO };

struct tclient {
	int fd;			/* our end, -1 once closed */
	int dfd;		/* the daemon's end */
	int state;
	uint64_t next;		/* the seq it must receive next */
};

static char sock_path[128];
static char sock_dir[64];
static int lfd = -1;
static uint64_t seq;
static struct tclient tc[LIVE_MAX];
static int ntc;

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
	tc[ntc++] = (struct tclient){ fd, clients[nr_clients - 1].fd, SILENT, 0 };
	/* its first message: the ATTACH, and nothing else yet */
	FZ_ASSERT(recv(fd, &r, sizeof(r) + 1, MSG_DONTWAIT | MSG_TRUNC) == sizeof(r) &&
		  r.op == SCOUTFS_NOTIFY_OP_ATTACH && r.seq == attach_rec.seq, "no ATTACH first");
	tc[ntc - 1].next = seq + 1;
}

/* what a client has received since: for a silent one, the records in order */
static void drain(struct tclient *t)
{
	rec_t r;
	ssize_t n;

	if (t->fd < 0)
		return;
	while ((n = recv(t->fd, &r, sizeof(r) + 1, MSG_DONTWAIT | MSG_TRUNC)) > 0) {
		if (t->state != SILENT)
			continue;
		FZ_ASSERT(n == sizeof(r), "a message of %zd bytes", n);
		FZ_ASSERT(r.seq == t->next && r.op == SCOUTFS_NOTIFY_OP_READ,
			  "seq %llu where %llu was next", (unsigned long long)r.seq,
			  (unsigned long long)t->next);
		t->next++;
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
	unsigned i;
	int k;

	for (i = 0; i < n; i++)
		recs[i] = (rec_t){ .seq = ++seq, .op = SCOUTFS_NOTIFY_OP_READ, .len = 1 };
	broadcast(recs, (int)n);
	for (k = 0; k < ntc; k++) {
		/* a send to one that closed may drop it already */
		if (daemon_index(tc[k].dfd) < 0) {
			FZ_ASSERT(tc[k].state == MUST_GO, "a silent client was dropped by a broadcast");
			forget(k--);
			continue;
		}
		drain(&tc[k]);
		if (tc[k].state == SILENT)
			FZ_ASSERT(tc[k].next == seq + 1, "a silent client is missing records");
	}
}

/* the daemon looked: who had to go is gone, everybody else is there */
static void look(void)
{
	int k;
	int known = 0;

	check_clients();
	for (k = 0; k < ntc; k++) {
		if (tc[k].state == MUST_GO) {
			FZ_ASSERT(daemon_index(tc[k].dfd) < 0, "a client that sent or hung up stays");
			forget(k--);
			continue;
		}
		FZ_ASSERT(daemon_index(tc[k].dfd) >= 0, "a silent client was dropped");
		known++;
	}
	FZ_ASSERT(nr_clients == known, "the daemon has %d clients, %d known", nr_clients, known);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i = 0;
	size_t len;
	struct tclient *t;
	unsigned char *buf;
	uint8_t b;

	seq = 1;
	while (i < size) {
		b = data[i++];
		t = ntc ? &tc[(b >> 3) % ntc] : NULL;
		switch (b & 7) {
		case 0:
			connect_one();
			break;
		case 1:
		case 6:
			/* a message: two bytes of length (under 64 KiB), then its bytes */
			len = 0;
			if (size - i >= 2) {
				len = (size_t)(data[i] | data[i + 1] << 8);
				i += 2;
			}
			buf = calloc(1, len ? len : 1);
			memcpy(buf, data + i, len < size - i ? len : size - i);
			i += len < size - i ? len : size - i;
			if ((b & 7) == 6) {
				FZ_ASSERT(client_msg(&clients[0], buf, len), "a message a client may send");
			} else if (t && t->fd >= 0 && send(t->fd, buf, len, MSG_DONTWAIT) == (ssize_t)len) {
				t->state = MUST_GO;
			}
			free(buf);
			break;
		case 2:
			if (t && t->fd >= 0) {
				close(t->fd);
				t->fd = -1;
				t->state = MUST_GO;
			}
			break;
		case 3:
			if (t && t->fd >= 0) {
				shutdown(t->fd, SHUT_WR);
				t->state = MUST_GO;
			}
			break;
		case 4:
			broadcast_some(1 + (b >> 3) % RECS_MAX);
			break;
		default:
			look();
			break;
		}
	}
	end_all();
	return 0;
}
