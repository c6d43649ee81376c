/*
 * Relay throughput, natively: how many 64 byte records per second reach
 * each of N SOCK_SEQPACKET clients, through scoutfs-notifyd (fed by
 * tests/daemon/fake-scoutfs.c as fast as it drains) and through a bare
 * loop that sends the same messages to the same number of clients with
 * sendmmsg(), the transport's limit.  Run by scripts/bench.sh.
 *
 *	relay-bench bare N M [PER]
 *	relay-bench daemon N M SOCKET CTL_SOCKET FIRST_SEQ [PER]
 *
 * PER (default 1) is the records per message: the bare loop sends
 * messages of PER records, the daemon's clients ask for PER records per
 * message (the request of utils/notifyd/notify-sock.h) unless it is 1.
 * Prints one line: "<mode> clients N records M per_client_rate R
 * aggregate_rate A lost L received T", rates in records per second, T
 * the records that reached the clients (N * M when none was lost), L
 * the daemon's records its clients never got (seq gaps, and the tail
 * that never came; the bare loop loses none: it blocks).
 * The mode is followed by PER when it is not 1 (bare256, daemon256).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#define BATCH 256
#define MAXC 64
#define MAX_PER 256
#define REC 64
#define REPLY_LEN 112

struct result {
	uint64_t received;
	uint64_t lost;
	uint64_t t_end_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* the records of one message: counted, and their seqs checked */
static void take(const unsigned char *m, size_t len, uint64_t first_seq, uint64_t *prev,
		 struct result *res)
{
	uint64_t seq;
	size_t k;

	if (len == REPLY_LEN || len % REC)
		return;		/* the daemon's reply to our request */
	for (k = 0; k < len; k += REC) {
		res->received++;
		if (!first_seq)
			continue;
		memcpy(&seq, m + k, sizeof(seq));
		/* the daemon's ATTACH, every client's first message */
		if (seq < first_seq) {
			res->received--;
			continue;
		}
		if (seq > *prev + 1)
			res->lost += seq - *prev - 1;
		*prev = seq;
	}
}

/*
 * Receive until the message with seq last (or M records for the bare
 * loop) arrived, or nothing came for IDLE_MS (the daemon's client may
 * lose the last ones; a starved sender on a loaded host may pause for
 * long).  Records the time of the last message.
 */
static void receive(int fd, uint64_t want, uint64_t first_seq, int per, struct result *res)
{
	static struct mmsghdr msgs[BATCH];
	static struct iovec iovs[BATCH];
	static unsigned char *bufs;
	uint64_t prev = first_seq ? first_seq - 1 : 0;
	uint64_t last = first_seq + want - 1;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t size = (size_t)per * REC + REPLY_LEN;
	int i;
	int n;

	bufs = malloc(size * BATCH);
	if (!bufs)
		return;
	for (i = 0; i < BATCH; i++) {
		iovs[i] = (struct iovec){ bufs + i * size, size };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iovs[i], .msg_iovlen = 1 };
	}
	for (;;) {
		if (poll(&pfd, 1, first_seq ? 2000 : 10000) <= 0)
			break;
		n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno == EAGAIN)
				continue;
			break;
		}
		res->t_end_ns = now_ns();
		for (i = 0; i < n; i++)
			take(iovs[i].iov_base, msgs[i].msg_len, first_seq, &prev, res);
		if (first_seq && prev >= last)
			break;
		if (!first_seq && res->received >= want)
			break;
	}
	if (first_seq && prev < last)
		res->lost += last - prev;
}

/* connect, asking for per records per message when it is more than one */
static int connect_to(const char *path, int per)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	unsigned char req[16] = { 'S', 'N', 'R', 'Q' };
	uint16_t version = 1;
	uint32_t max = (uint32_t)per;

	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		perror("connect");
		exit(1);
	}
	memcpy(req + 4, &version, sizeof(version));
	memcpy(req + 8, &max, sizeof(max));
	if (per > 1 && send(fd, req, sizeof(req), 0) != sizeof(req)) {
		perror("request");
		exit(1);
	}
	return fd;
}

/* the bare loop: the same message shape the daemon sends, blocking, batched */
static void bare_send(int fds[][2], int n, uint64_t m, int per)
{
	static struct mmsghdr msgs[BATCH];
	static struct iovec iovs[BATCH];
	static uint64_t recs[BATCH * MAX_PER][8];
	uint64_t sent[MAXC] = { 0 };
	uint64_t msgs_m = (m + per - 1) / per;
	int left = n;
	int i;

	for (i = 0; i < BATCH; i++) {
		iovs[i] = (struct iovec){ recs[i * per], (size_t)REC * per };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iovs[i], .msg_iovlen = 1 };
	}
	while (left) {
		left = 0;
		for (i = 0; i < n; i++) {
			uint64_t k = msgs_m - sent[i] < BATCH ? msgs_m - sent[i] : BATCH;
			int r;

			if (!k)
				continue;
			r = sendmmsg(fds[i][0], msgs, k, MSG_NOSIGNAL);
			if (r > 0)
				sent[i] += r;
			else if (r < 0 && errno != EINTR)
				sent[i] = msgs_m;	/* its receiver is gone */
			left++;
		}
	}
}

static int start_stream(const char *ctl, uint64_t m)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char cmd[64];
	int cfd = socket(AF_UNIX, SOCK_DGRAM, 0);

	strncpy(sun.sun_path, ctl, sizeof(sun.sun_path) - 1);
	snprintf(cmd, sizeof(cmd), "stream %llu", (unsigned long long)m);
	if (sendto(cfd, cmd, strlen(cmd), 0, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		perror("ctl");
		return -1;
	}
	close(cfd);
	return 0;
}

int main(int argc, char **argv)
{
	struct result *res;
	uint64_t start;
	uint64_t end = 0;
	uint64_t total = 0;
	uint64_t lost = 0;
	uint64_t m;
	uint64_t first = 0;
	int fds[MAXC][2];
	pid_t pids[MAXC];
	char mode[32];
	int bare;
	int per = 1;
	int n;
	int i;

	bare = argc >= 4 && !strcmp(argv[1], "bare");
	if (argc < 4 || (!bare && strcmp(argv[1], "daemon")) ||
	    (bare && argc > 5) || (!bare && argc != 7 && argc != 8)) {
		fprintf(stderr, "usage: relay-bench bare N M [PER] | daemon N M SOCKET CTL FIRST_SEQ [PER]\n");
		return 2;
	}
	n = atoi(argv[2]);
	m = strtoull(argv[3], NULL, 10);
	if (argc == (bare ? 5 : 8))
		per = atoi(argv[argc - 1]);
	if (n < 1 || n > MAXC || m == 0 || per < 1 || per > MAX_PER) {
		fprintf(stderr, "relay-bench: N must be 1..%d, M > 0, PER 1..%d\n", MAXC, MAX_PER);
		return 2;
	}
	if (!bare)
		first = strtoull(argv[6], NULL, 10);
	res = mmap(NULL, sizeof(*res) * n, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return 1;
	memset(res, 0, sizeof(*res) * n);

	for (i = 0; i < n; i++) {
		if (bare) {
			if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds[i]))
				return 1;
		} else {
			fds[i][0] = -1;
			fds[i][1] = connect_to(argv[4], per);
		}
	}
	start = now_ns();
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			receive(fds[i][1], m, first, per, &res[i]);
			_exit(0);
		}
		/* a receiver that gives up closes its end: sends then fail */
		close(fds[i][1]);
	}

	if (bare) {
		bare_send(fds, n, m, per);
	} else {
		start = now_ns();
		if (start_stream(argv[5], m))
			return 1;
	}

	for (i = 0; i < n; i++) {
		waitpid(pids[i], NULL, 0);
		total += res[i].received;
		lost += res[i].lost;
		if (res[i].t_end_ns > end)
			end = res[i].t_end_ns;
	}
	if (end <= start)
		end = start + 1;
	snprintf(mode, sizeof(mode), "%s", argv[1]);
	if (per > 1)
		snprintf(mode, sizeof(mode), "%s%d", argv[1], per);
	printf("%s clients %d records %llu per_client_rate %.0f aggregate_rate %.0f lost %llu received %llu\n",
	       mode, n, (unsigned long long)m,
	       (double)total / n / ((end - start) / 1e9),
	       (double)total / ((end - start) / 1e9),
	       (unsigned long long)lost, (unsigned long long)total);
	return 0;
}
