/*
 * The in-VM half of `make bench` (tests/vm/bench.sh drives it).
 *
 *	hookbench pread FILE ITERS	4 KiB preads from page cache: ns/op
 *					elapsed, and ns/op of this process's
 *					own CPU time
 *	hookbench open FILE ITERS	open+close: the same
 *	hookbench fanotify MNT READY	drain FAN_OPEN|FAN_ACCESS events of a
 *					filesystem mark until SIGTERM; creates
 *					READY once the mark is in place
 *	hookbench busyread FILE SECS	preads as fast as possible for SECS:
 *					prints the preads and this process's
 *					CPU time in ns
 *	hookbench seqread FILE BS	read(2) the whole file, BS bytes a
 *					call: prints the calls and the bytes
 *	hookbench drain MNT READY	attach as the mount's notify reader and
 *					drain as a busy scoutfs-notifyd does
 *					(merged records, batched waits) without
 *					relaying, until SIGTERM; creates READY
 *					once attached; prints "records R calls C
 *					drains D cpu_ns N" (its CPU from then on)
 *	hookbench hog READY SECS	spin on the CPU (no system calls) for
 *					SECS or until SIGTERM; creates READY
 *					once spinning
 *	hookbench paced FILE N USEC	N preads, USEC apart
 *	hookbench backread FILE N	N 1 byte preads from offset N - 1 down
 *					to 0: each goes backwards, so none is
 *					merged into the record before it
 *	hookbench latency SOCK N	receive N READ records from the
 *					daemon's socket (or fewer, until
 *					SIGTERM): emit-to-receipt latency p50
 *					and p99 in microseconds, how many
 *					arrived and the seq gaps between them
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/types.h>
#ifndef U64_MAX
#define U64_MAX ((__u64)~0ULL)
#endif
#include "ioctl.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ns per operation: elapsed, and this process's CPU time */
static void report(uint64_t t0, uint64_t c0, uint64_t n)
{
	uint64_t c1 = now(CLOCK_PROCESS_CPUTIME_ID);
	uint64_t t1 = now(CLOCK_MONOTONIC);

	printf("%.1f %.1f\n", (double)(t1 - t0) / n, (double)(c1 - c0) / n);
}

static int open_or_die(const char *path, int flags)
{
	int fd = open(path, flags);

	if (fd < 0) {
		fprintf(stderr, "hookbench: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* the whole file, bs bytes a read(2) */
static int seqread(const char *path, uint64_t bs)
{
	static char buf[1 << 20];
	uint64_t calls = 0;
	uint64_t bytes = 0;
	ssize_t r;
	int fd = open_or_die(path, O_RDONLY);

	if (bs == 0 || bs > sizeof(buf))
		return 2;
	while ((r = read(fd, buf, bs)) > 0) {
		calls++;
		bytes += r;
	}
	printf("%llu %llu\n", (unsigned long long)calls, (unsigned long long)bytes);
	return r < 0;
}

static long rn(int fd, struct scoutfs_ioctl_notify_record *recs, uint32_t batch_nr,
	       uint32_t batch_us)
{
	struct scoutfs_ioctl_read_notify a = {
		.recs_ptr = (unsigned long)recs, .recs_nr = 256, .timeout_ms = 200,
		.flags = SCOUTFS_IOC_RN_WAIT | SCOUTFS_IOC_RN_MERGE,
		.batch_nr = batch_nr, .batch_us = batch_us,
	};

	return ioctl(fd, SCOUTFS_IOC_READ_NOTIFY, &a);
}

/*
 * The ioctl's share of the daemon's work: drain as the daemon does when
 * it is busy (utils/notifyd/scoutfs-notifyd.c batch_us(): a batch of 64
 * or 250 us, 2 ms while records merge well) and do nothing with the
 * records.  Always batched: a reader this cheap would otherwise take
 * each record as it is stored, which the daemon, busy relaying, doesn't.
 */
static int drain(const char *mnt, const char *ready)
{
	static struct scoutfs_ioctl_notify_record recs[256];
	struct sigaction sa = { .sa_handler = on_term };
	uint64_t records = 0;
	uint64_t calls = 0;
	uint64_t drains = 0;
	uint64_t c;
	uint64_t c0;
	uint32_t us = 250;
	long n;
	long i;
	int fd = open_or_die(mnt, O_RDONLY | O_DIRECTORY);

	sigaction(SIGTERM, &sa, NULL);
	if (rn(fd, recs, 0, 0) < 0) {
		fprintf(stderr, "hookbench: attach: %s\n", strerror(errno));
		return 1;
	}
	close(open_or_die(ready, O_CREAT | O_WRONLY));
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	while (!stop) {
		n = rn(fd, recs, 64, us);
		if (n < 0)
			continue;
		for (i = 0, c = 0; i < n; i++)
			c += recs[i].calls;
		records += n;
		calls += c;
		drains += n > 0;
		us = n > 0 && c >= (uint64_t)n * 4 ? 2000 : 250;
	}
	printf("records %llu calls %llu drains %llu cpu_ns %llu\n", (unsigned long long)records,
	       (unsigned long long)calls, (unsigned long long)drains,
	       (unsigned long long)(now(CLOCK_PROCESS_CPUTIME_ID) - c0));
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[4096];
	uint64_t t0;
	uint64_t c0;
	uint64_t i;
	uint64_t n;
	int fd;

	if (argc < 4) {
		fprintf(stderr, "usage: see the comment at the top of hookbench.c\n");
		return 2;
	}
	n = strtoull(argv[3], NULL, 10);

	if (!strcmp(argv[1], "pread")) {
		fd = open_or_die(argv[2], O_RDONLY);
		for (i = 0; i < 64; i++)	/* warm the page cache */
			if (pread(fd, buf, 4096, (i % 16) * 4096) != 4096)
				return 1;
		t0 = now(CLOCK_MONOTONIC);
		c0 = now(CLOCK_PROCESS_CPUTIME_ID);
		for (i = 0; i < n; i++)
			if (pread(fd, buf, 4096, (i % 16) * 4096) != 4096)
				return 1;
		report(t0, c0, n);
		return 0;
	}
	if (!strcmp(argv[1], "open")) {
		t0 = now(CLOCK_MONOTONIC);
		c0 = now(CLOCK_PROCESS_CPUTIME_ID);
		for (i = 0; i < n; i++)
			close(open_or_die(argv[2], O_RDONLY));
		report(t0, c0, n);
		return 0;
	}
	if (!strcmp(argv[1], "fanotify")) {
		static char ev[65536];
		struct sigaction sa = { .sa_handler = on_term };
		uint64_t events = 0;
		ssize_t len;

		sigaction(SIGTERM, &sa, NULL);
		fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
		if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
					    FAN_OPEN | FAN_ACCESS, AT_FDCWD, argv[2])) {
			fprintf(stderr, "hookbench: fanotify: %s\n", strerror(errno));
			return 1;
		}
		close(open_or_die(argv[3], O_CREAT | O_WRONLY));
		while (!stop) {
			struct fanotify_event_metadata *m = (void *)ev;

			len = read(fd, ev, sizeof(ev));
			if (len <= 0)
				continue;
			for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
				if (m->fd >= 0)
					close(m->fd);
				events++;
			}
		}
		printf("fanotify events %llu\n", (unsigned long long)events);
		return 0;
	}
	if (!strcmp(argv[1], "busyread")) {
		uint64_t end = now(CLOCK_MONOTONIC) + n * 1000000000ULL;

		c0 = now(CLOCK_PROCESS_CPUTIME_ID);
		fd = open_or_die(argv[2], O_RDONLY);
		for (i = 0; now(CLOCK_MONOTONIC) < end; i++)
			if (pread(fd, buf, 4096, (i % 16) * 4096) != 4096)
				return 1;
		printf("%llu %llu\n", (unsigned long long)i,
		       (unsigned long long)(now(CLOCK_PROCESS_CPUTIME_ID) - c0));
		return 0;
	}
	if (!strcmp(argv[1], "seqread"))
		return seqread(argv[2], n);
	if (!strcmp(argv[1], "drain"))
		return drain(argv[2], argv[3]);
	if (!strcmp(argv[1], "hog")) {
		struct sigaction sa = { .sa_handler = on_term };
		uint64_t end = now(CLOCK_MONOTONIC) + n * 1000000000ULL;
		volatile uint64_t spins = 0;

		sigaction(SIGTERM, &sa, NULL);
		close(open_or_die(argv[2], O_CREAT | O_WRONLY));
		while (!stop && now(CLOCK_MONOTONIC) < end)
			for (i = 0; i < 100000; i++)
				spins++;
		return 0;
	}
	if (!strcmp(argv[1], "backread")) {
		fd = open_or_die(argv[2], O_RDONLY);
		for (i = n; i > 0; i--)
			if (pread(fd, buf, 1, i - 1) != 1)
				return 1;
		return 0;
	}
	if (!strcmp(argv[1], "paced") && argc == 5) {
		struct timespec ts = { 0, atol(argv[4]) * 1000L };

		fd = open_or_die(argv[2], O_RDONLY);
		for (i = 0; i < n; i++) {
			if (pread(fd, buf, 4096, 0) != 4096)
				return 1;
			nanosleep(&ts, NULL);
		}
		return 0;
	}
	if (!strcmp(argv[1], "latency")) {
		struct scoutfs_ioctl_notify_record rec;
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		/* no SA_RESTART: SIGTERM ends the recv() and the wait */
		struct sigaction sa = { .sa_handler = on_term };
		uint64_t *lat = calloc(n, sizeof(*lat));
		uint64_t got = 0;
		uint64_t lost = 0;
		uint64_t prev = 0;
		int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);

		sigaction(SIGTERM, &sa, NULL);
		strncpy(sun.sun_path, argv[2], sizeof(sun.sun_path) - 1);
		if (!lat || s < 0 || connect(s, (struct sockaddr *)&sun, sizeof(sun))) {
			fprintf(stderr, "hookbench: connect: %s\n", strerror(errno));
			return 1;
		}
		printf("connected\n");
		fflush(stdout);
		while (!stop && got < n && recv(s, &rec, sizeof(rec), 0) == sizeof(rec)) {
			uint64_t t = now(CLOCK_REALTIME);

			if (prev && rec.seq > prev + 1)
				lost += rec.seq - prev - 1;
			prev = rec.seq;
			if (rec.op == SCOUTFS_NOTIFY_OP_READ)
				lat[got++] = t > rec.time_ns ? t - rec.time_ns : 0;
		}
		qsort(lat, got, sizeof(*lat), cmp_u64);
		if (!got)
			return 1;
		printf("latency_us n %llu p50 %.1f p99 %.1f lost %llu\n", (unsigned long long)got,
		       lat[got / 2] / 1000.0, lat[(got * 99) / 100] / 1000.0,
		       (unsigned long long)lost);
		return 0;
	}
	fprintf(stderr, "hookbench: unknown mode '%s'\n", argv[1]);
	return 2;
}
