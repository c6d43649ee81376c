/*
 * A test client of scoutfs-notifyd for the tier 1 tests: connects to
 * the daemon's socket, optionally stalls (doesn't read) until a file
 * exists, then receives records and checks them.
 *
 *	tclient SOCKET N [STALL_FILE]
 *
 * Receives N records (N = 0: until the daemon closes the connection),
 * prints "progress R" after every 1000 and ends with one line
 *
 *	summary attach=A received=R first=S last=S gaps=G disorder=D bad=B eof=E
 *
 * A is the seq of the ATTACH record the daemon sends every client
 * first (0 if the first message was not one); it is not one of the N
 * records, and the gaps start at the first record after it.  gaps is the sum of the seq gaps between consecutive records, disorder
 * the number of records whose seq didn't increase, bad the number of
 * messages that weren't 64 bytes.  Exit 0 unless it can't connect.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#define REC_BYTES 64

int main(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	unsigned char buf[REC_BYTES + 1];
	uint64_t received = 0, first = 0, last = 0, gaps = 0, attach = 0;
	uint32_t op;
	int greeted = 0;
	uint64_t disorder = 0, bad = 0, want, seq;
	int eof = 0, i, fd;
	ssize_t n;

	if (argc < 3 || argc > 4 || strlen(argv[1]) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "usage: tclient SOCKET N [STALL_FILE]\n");
		return 2;
	}
	want = strtoull(argv[2], NULL, 10);
	strcpy(sun.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		fprintf(stderr, "tclient: connect %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("connected\n");
	fflush(stdout);

	/* stall: bounded, the test creates the file */
	if (argc == 4) {
		for (i = 0; i < 6000 && access(argv[3], F_OK); i++)
			nanosleep(&ts, NULL);
	}

	while (!want || received < want) {
		n = recv(fd, buf, sizeof(buf), MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = 1;
			break;
		}
		if (n != REC_BYTES) {
			bad++;
			continue;
		}
		memcpy(&seq, buf, sizeof(seq));
		memcpy(&op, buf + 40, sizeof(op));
		/* the first message: the daemon's ATTACH (op 3) */
		if (!greeted) {
			greeted = 1;
			if (op == 3) {
				attach = seq;
				continue;
			}
		}
		if (received == 0)
			first = seq;
		else if (seq <= last)
			disorder++;
		else
			gaps += seq - last - 1;
		last = seq;
		if (++received % 1000 == 0) {
			printf("progress %" PRIu64 "\n", received);
			fflush(stdout);
		}
	}
	printf("summary attach=%" PRIu64 " received=%" PRIu64 " first=%" PRIu64 " last=%" PRIu64
	       " gaps=%" PRIu64 " disorder=%" PRIu64 " bad=%" PRIu64 " eof=%d\n",
	       attach, received, first, last, gaps, disorder, bad, eof);
	close(fd);
	return 0;
}
