/*
 * Relay throughput, natively: how many 64 byte records per second reach
 * each of N SOCK_SEQPACKET clients, through scoutfs-notifyd (fed by
 * tests/daemon/fake-scoutfs.c as fast as it drains) and through a bare
 * loop that sends the same messages to the same number of clients with
 * sendmmsg(), the transport's limit.  Run by scripts/bench.sh.
 *
 *	relay-bench bare N M
 *	relay-bench daemon N M SOCKET CTL_SOCKET FIRST_SEQ
 *
 * Prints one line: "<mode> clients N records M per_client_rate R
 * aggregate_rate A lost L received T", rates in records per second, T
 * the records that reached the clients (N * M when none was lost), L
 * the daemon's records its clients never got (seq gaps, and the tail
 * that never came; the bare loop loses none: it blocks).
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

/*
 * Receive until the message with seq last (or M messages for the bare
 * loop) arrived, or nothing came for IDLE_MS (the daemon's client may
 * lose the last ones; a starved sender on a loaded host may pause for
 * long).  Records the time of the last message.
 */
static void receive(int fd, uint64_t want, uint64_t first_seq, struct result *res)
{
	static struct mmsghdr msgs[BATCH];
	static struct iovec iovs[BATCH];
	static uint64_t bufs[BATCH][9];
	uint64_t prev = first_seq ? first_seq - 1 : 0;
	uint64_t last = first_seq + want - 1;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int i;
	int n;

	for (i = 0; i < BATCH; i++) {
		iovs[i] = (struct iovec){ bufs[i], 72 };
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
		res->received += n;
		if (first_seq) {
			for (i = 0; i < n; i++) {
				uint64_t seq = bufs[i][0];

				/* the daemon's ATTACH, every client's first message */
				if (seq < first_seq) {
					res->received--;
					continue;
				}
				if (seq > prev + 1)
					res->lost += seq - prev - 1;
				prev = seq;
			}
			if (prev >= last)
				break;
		} else if (res->received >= want) {
			break;
		}
	}
	if (first_seq && prev < last)
		res->lost += last - prev;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		perror("connect");
		exit(1);
	}
	return fd;
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
	int bare;
	int n;
	int i;

	if (argc < 4 || (strcmp(argv[1], "bare") && strcmp(argv[1], "daemon")) ||
	    (!strcmp(argv[1], "daemon") && argc != 7)) {
		fprintf(stderr, "usage: relay-bench bare N M | daemon N M SOCKET CTL FIRST_SEQ\n");
		return 2;
	}
	bare = !strcmp(argv[1], "bare");
	n = atoi(argv[2]);
	m = strtoull(argv[3], NULL, 10);
	if (n < 1 || n > MAXC || m == 0) {
		fprintf(stderr, "relay-bench: N must be 1..%d and M > 0\n", MAXC);
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
			fds[i][1] = connect_to(argv[4]);
		}
	}
	start = now_ns();
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			receive(fds[i][1], m, first, &res[i]);
			_exit(0);
		}
		/* a receiver that gives up closes its end: sends then fail */
		close(fds[i][1]);
	}

	if (bare) {
		/* the same message shape the daemon sends, blocking, batched */
		static struct mmsghdr msgs[BATCH];
		static struct iovec iovs[BATCH];
		static uint64_t recs[BATCH][8];
		uint64_t sent[MAXC] = { 0 };
		int left = n;

		for (i = 0; i < BATCH; i++) {
			iovs[i] = (struct iovec){ recs[i], 64 };
			msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iovs[i], .msg_iovlen = 1 };
		}
		while (left) {
			left = 0;
			for (i = 0; i < n; i++) {
				uint64_t k = m - sent[i] < BATCH ? m - sent[i] : BATCH;
				int r;

				if (!k)
					continue;
				r = sendmmsg(fds[i][0], msgs, k, MSG_NOSIGNAL);
				if (r > 0)
					sent[i] += r;
				else if (r < 0 && errno != EINTR)
					sent[i] = m;	/* its receiver is gone */
				left++;
			}
		}
	} else {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		char cmd[64];
		int cfd = socket(AF_UNIX, SOCK_DGRAM, 0);

		strncpy(sun.sun_path, argv[5], sizeof(sun.sun_path) - 1);
		snprintf(cmd, sizeof(cmd), "stream %llu", (unsigned long long)m);
		start = now_ns();
		if (sendto(cfd, cmd, strlen(cmd), 0, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			perror("ctl");
			return 1;
		}
		close(cfd);
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
	printf("%s clients %d records %llu per_client_rate %.0f aggregate_rate %.0f lost %llu received %llu\n",
	       argv[1], n, (unsigned long long)m,
	       (double)total / n / ((end - start) / 1e9),
	       (double)total / ((end - start) / 1e9),
	       (unsigned long long)lost, (unsigned long long)total);
	return 0;
}
