/*
 * What the in-VM C tests share (tests/vm/kernel-test.c and
 * tests/vm/faults-test.c): PASS/FAIL lines and counts, the notify
 * ioctl, the counters, files on the mount, and bounded waits for child
 * processes.  Each test program defines `prog` (its name for the
 * closing line) and sets `mnt`.
 */
#ifndef NOTIFY_LIB_H
#define NOTIFY_LIB_H

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <linux/types.h>
#ifndef U64_MAX
#define U64_MAX ((__u64)~0ULL)
#endif
#include "ioctl.h"

typedef struct scoutfs_ioctl_notify_record rec_t;

static const char *mnt;
static int passed;
static int failed;
static char cur[64];

#define RING_NR 1024

static inline void pass(const char *fmt, ...)
{
	va_list ap;

	printf("PASS: %s: ", cur);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	passed++;
}

static inline void fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: %s: ", cur);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failed++;
}

#define CHECK(cond, ...)			\
	do {					\
		if (cond)			\
			pass(__VA_ARGS__);	\
		else				\
			fail(__VA_ARGS__);	\
	} while (0)

static const char *prog;

static inline void die(const char *what)
{
	printf("FAIL: %s: %s: %s\n", cur, what, strerror(errno));
	printf("%s: %d passed, %d failed\n", prog, passed, failed + 1);
	exit(1);
}

static inline uint64_t now_ns(int clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static inline uint64_t counter(const char *name)
{
	char pat[256];
	glob_t g;
	FILE *f;
	unsigned long long v = ~0ULL;

	snprintf(pat, sizeof(pat), "/sys/fs/scoutfs/*/counters/%s", name);
	if (glob(pat, 0, NULL, &g) != 0 || g.gl_pathc != 1) {
		fail("counter %s: %zu matches of %s", name,
		     (size_t)g.gl_pathc, pat);
		globfree(&g);
		return ~0ULL;
	}
	f = fopen(g.gl_pathv[0], "r");
	if (!f || fscanf(f, "%llu", &v) != 1)
		fail("counter %s unreadable", name);
	if (f)
		fclose(f);
	globfree(&g);
	return v;
}

static inline char *path_of(const char *name)
{
	static char bufs[4][PATH_MAX];
	static int i;
	char *p = bufs[i++ & 3];

	snprintf(p, PATH_MAX, "%s/%s", mnt, name);
	return p;
}

static inline int open_root(void)
{
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);

	if (fd < 0)
		die("open mount root");
	return fd;
}

static inline long rn_call(int fd, rec_t *recs, uint64_t nr, uint64_t flags,
		    uint64_t timeout_ms)
{
	struct scoutfs_ioctl_read_notify rn = {
		.recs_ptr = (unsigned long)recs,
		.recs_nr = nr,
		.timeout_ms = timeout_ms,
		.flags = flags,
	};

	return ioctl(fd, SCOUTFS_IOC_READ_NOTIFY, &rn);
}

/*
 * drain everything now in the ring into recs (up to max), with flags
 * (SCOUTFS_IOC_RN_MERGE or 0) on every call
 */
static inline long drain_flags(int fd, rec_t *recs, long max, uint64_t flags)
{
	long n = 0;
	long ret;

	while (n < max) {
		ret = rn_call(fd, recs + n, max - n, flags, 0);
		if (ret < 0)
			return -1;
		if (ret == 0)
			break;
		n += ret;
	}
	return n;
}

static inline long drain(int fd, rec_t *recs, long max)
{
	return drain_flags(fd, recs, max, 0);
}

/* the same for a reader that asks for merged records */
static inline long drain_merged(int fd, rec_t *recs, long max)
{
	return drain_flags(fd, recs, max, SCOUTFS_IOC_RN_MERGE);
}

static inline void make_file(const char *name, size_t size, mode_t mode)
{
	char buf[4096];
	size_t done = 0;
	int fd;

	fd = open(path_of(name), O_CREAT | O_TRUNC | O_WRONLY, mode);
	if (fd < 0)
		die("create file");
	while (done < size) {
		size_t n = size - done < sizeof(buf) ? size - done : sizeof(buf);

		memset(buf, 'a' + (done / 4096) % 26, n);
		if (write(fd, buf, n) != (ssize_t)n)
			die("write");
		done += n;
	}
	fchmod(fd, mode);
	close(fd);
}

static inline uint64_t ino_of(const char *name)
{
	struct stat st;

	if (stat(path_of(name), &st))
		die("stat");
	return st.st_ino;
}

/* the state letter of /proc/<pid>/stat and its wchan */
static inline char proc_state(pid_t pid)
{
	char p[64];
	char buf[512];
	char *c;
	FILE *f;
	size_t n;

	snprintf(p, sizeof(p), "/proc/%d/stat", pid);
	f = fopen(p, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	c = strrchr(buf, ')');
	return c && c[1] == ' ' ? c[2] : 0;
}

/*
 * Wait (bounded) until pid sleeps interruptibly, which for the children
 * here means it is waiting in the ioctl: they do nothing else that
 * sleeps after saying they are about to call it.
 */
static inline bool wait_sleeping(pid_t pid, int secs)
{
	uint64_t end = now_ns(CLOCK_MONOTONIC) + (uint64_t)secs * 1000000000ULL;
	struct timespec ts = { 0, 1000000 };

	while (now_ns(CLOCK_MONOTONIC) < end) {
		if (proc_state(pid) == 'S')
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* waitpid until a deadline: the status, or -1 when it ran out */
static inline int reap_until(pid_t pid, uint64_t end)
{
	struct timespec ts = { 0, 1000000 };
	int status;

	while (now_ns(CLOCK_MONOTONIC) < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		nanosleep(&ts, NULL);
	}
	return -1;
}

/*
 * waitpid with a deadline; kills the child when it runs out.  A child
 * stuck in the kernel (D state) can't die, so the wait after the kill
 * is bounded too and the child is left behind: the caller fails
 * instead of hanging with it.
 */
static inline int reap(pid_t pid, int secs)
{
	int status;

	status = reap_until(pid, now_ns(CLOCK_MONOTONIC) + (uint64_t)secs * 1000000000ULL);
	if (status >= 0)
		return status;
	kill(pid, SIGKILL);
	if (reap_until(pid, now_ns(CLOCK_MONOTONIC) + 10000000000ULL) >= 0)
		fail("child %d did not finish within %d s", pid, secs);
	else
		fail("child %d did not finish within %d s and is stuck in the kernel", pid, secs);
	return -1;
}

/*
 * Wait up to secs for the scoutfs module's reference count to reach 0,
 * leaving its last reading in buf ("" if unreadable).  Every mount holds
 * the module, so 0 means every superblock has been torn down.
 */
static inline bool wait_module_unused(int secs, char *buf, size_t size)
{
	uint64_t end = now_ns(CLOCK_MONOTONIC) + (uint64_t)secs * 1000000000ULL;
	struct timespec ts = { 0, 10000000 };
	FILE *f;

	for (;;) {
		buf[0] = 0;
		f = fopen("/sys/module/scoutfs/refcnt", "r");
		if (f) {
			if (!fgets(buf, size, f))
				buf[0] = 0;
			fclose(f);
		}
		if (strcmp(buf, "0\n") == 0)
			return true;
		if (now_ns(CLOCK_MONOTONIC) >= end)
			return false;
		nanosleep(&ts, NULL);
	}
}

/* a reader that doesn't ask for merged records gets calls 0, as before */
static inline bool rec_zero_tail(const rec_t *r)
{
	return r->calls == 0;
}

struct expect {
	uint32_t op;
	uint64_t ino;
	uint64_t offset;
	uint64_t len;
	uint32_t flags;
	uint32_t pid;
	uint32_t uid;
	uint32_t gid;
};

static inline void show_rec(const char *tag, int i, const rec_t *r)
{
	printf("  %s %d: op %u ino %llu pid %u uid %u gid %u off %llu len %llu flags 0%o seq %llu\n",
	       tag, i, r->op, (unsigned long long)r->ino, r->pid, r->uid, r->gid,
	       (unsigned long long)r->offset, (unsigned long long)r->len,
	       r->flags, (unsigned long long)r->seq);
}

static inline void show_expect(int i, const struct expect *e)
{
	printf("  want %d: op %u ino %llu pid %u uid %u gid %u off %llu len %llu flags 0%o\n",
	       i, e->op, (unsigned long long)e->ino, e->pid, e->uid, e->gid,
	       (unsigned long long)e->offset, (unsigned long long)e->len, e->flags);
}

/*
 * Compare drained records with what was expected, exactly and in
 * order, consecutive seqs, realtime stamps within [t0, t1]; on a
 * mismatch both lists are printed.  Returns whether they matched.
 */
static inline bool match(const char *what, const rec_t *recs, long n,
			 const struct expect *ex, int nex, uint64_t t0, uint64_t t1)
{
	bool ok = n == nex;
	int i;

	for (i = 0; ok && i < nex; i++) {
		const rec_t *r = &recs[i];
		const struct expect *e = &ex[i];

		ok = r->op == e->op && r->ino == e->ino && r->pid == e->pid &&
		     r->uid == e->uid && r->gid == e->gid &&
		     r->offset == e->offset && r->len == e->len &&
		     r->flags == e->flags && rec_zero_tail(r) &&
		     r->time_ns >= t0 && r->time_ns <= t1 &&
		     (i == 0 || r->seq == recs[i - 1].seq + 1);
	}
	if (ok) {
		pass("%s: %d records as expected", what, nex);
		return true;
	}
	fail("%s: %ld records, want %d (listed below)", what, n, nex);
	for (i = 0; i < n; i++)
		show_rec("got", i, &recs[i]);
	for (i = 0; i < nex; i++)
		show_expect(i, &ex[i]);
	return false;
}

/*
 * ->open sees the open(2) flags (O_CREAT, O_EXCL and O_TRUNC are only
 * cleared after it) plus O_LARGEFILE, which the kernel forces on 64bit
 * (0100000 on x86_64; glibc's headers define it as 0 there).  O_CLOEXEC
 * belongs to the descriptor, not the file, and isn't seen.
 */
#define KERNEL_O_LARGEFILE 0100000
#define OPEN_FLAGS(f) ((uint32_t)((f) & ~O_CLOEXEC) | KERNEL_O_LARGEFILE)

struct test_case {
	const char *name;
	void (*fn)(void);
};

/*
 * The programs' main: `<name> <mountpoint> [-t test]` runs every test
 * in order, or the one named, and ends with the closing line.  A -t
 * that names no test is an error rather than a run of nothing.
 */
static inline int run_tests(int argc, char **argv, const char *name,
			    const struct test_case *tests, size_t nr)
{
	const char *only = NULL;
	bool found = false;
	size_t i;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	prog = name;
	while ((c = getopt(argc, argv, "t:")) != -1) {
		if (c != 't') {
			fprintf(stderr, "usage: %s <mountpoint> [-t test]\n", name);
			return 2;
		}
		only = optarg;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: %s <mountpoint> [-t test]\n", name);
		return 2;
	}
	mnt = argv[optind];

	for (i = 0; i < nr; i++) {
		if (only && strcmp(only, tests[i].name))
			continue;
		found = true;
		snprintf(cur, sizeof(cur), "%s", tests[i].name);
		printf("--- %s\n", cur);
		tests[i].fn();
	}
	if (!found) {
		snprintf(cur, sizeof(cur), "%s", name);
		fail("no test named '%s'", only);
	}
	printf("%s: %d passed, %d failed\n", name, passed, failed);
	return failed ? 1 : 0;
}

#endif
