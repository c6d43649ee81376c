/*
 * The kernel tests of scoutfs-notify, run inside the VM as root on a
 * freshly made and mounted scoutfs (tests/vm/guest.sh, suite kernel).
 *
 *	kernel-test <mountpoint> [-t <test>]
 *
 * Each test prints PASS or FAIL lines; the program ends with
 * "kernel-test: N passed, N failed".  Nothing waits with a sleep: a
 * child that must be blocked in the ioctl is polled for through
 * /proc/<pid>/stat with a deadline, and every blocking call is
 * bounded by alarm() in the child that makes it.
 *
 * The tests run in order and depend on it: no_reader must see the
 * fresh mount, and umount must be last (the mount is gone after it).
 */
#include <sys/fsuid.h>
#include <linux/userfaultfd.h>

#include "notify-lib.h"

static void t_no_reader(void)
{
	char buf[4096];
	int fd;
	int i;
	int rfd;
	rec_t recs[8];
	long n;

	make_file("nr", 10000, 0644);
	for (i = 0; i < 50; i++) {
		void *m;

		fd = open(path_of("nr"), O_RDONLY);
		if (fd < 0)
			die("open");
		if (read(fd, buf, sizeof(buf)) <= 0 ||
		    pread(fd, buf, 100, 5000) != 100)
			die("read");
		m = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED || ((volatile char *)m)[100] != 'a')
			die("mmap");
		munmap(m, 8192);
		close(fd);
	}
	CHECK(counter("notify_emitted") == 0,
	      "50 opens, 100 reads and 50 mmaps without a reader: notify_emitted %" PRIu64,
	      counter("notify_emitted"));
	CHECK(counter("notify_reader_attached") == 0,
	      "notify_reader_attached 0 before any reader");

	rfd = open_root();
	n = rn_call(rfd, recs, 8, 0, 0);
	CHECK(n == 1 && recs[0].op == SCOUTFS_NOTIFY_OP_ATTACH &&
	      recs[0].seq == 1,
	      "first reader's first record: n %ld op %u seq %llu (want ATTACH seq 1)",
	      n, n > 0 ? recs[0].op : 0,
	      n > 0 ? (unsigned long long)recs[0].seq : 0ULL);
	close(rfd);
}

static void t_attach(void)
{
	uint64_t att = counter("notify_reader_attached");
	uint64_t t0 = now_ns(CLOCK_REALTIME);
	rec_t recs[8];
	int rfd = open_root();
	long n = rn_call(rfd, recs, 8, 0, 0);
	uint64_t t1 = now_ns(CLOCK_REALTIME);

	CHECK(n == 1, "attach returns the ATTACH record alone: %ld", n);
	if (n >= 1) {
		rec_t *r = &recs[0];

		CHECK(r->op == SCOUTFS_NOTIFY_OP_ATTACH && r->ino == 0 &&
		      r->pid == (uint32_t)getpid() && r->uid == 0 &&
		      r->offset == 0 && r->len == 0 && rec_zero_tail(r),
		      "ATTACH op %u ino %llu pid %u (mine %d) uid %u",
		      r->op, (unsigned long long)r->ino, r->pid, getpid(),
		      r->uid);
		CHECK(r->time_ns >= t0 && r->time_ns <= t1,
		      "ATTACH time_ns within the call");
		CHECK(r->seq == 2, "ATTACH seq %llu continues the mount's seq (want 2)",
		      (unsigned long long)r->seq);
	}
	CHECK(counter("notify_reader_attached") == att + 1,
	      "notify_reader_attached %" PRIu64 " -> %" PRIu64, att,
	      counter("notify_reader_attached"));
	close(rfd);
}

static void t_open_read(void)
{
	rec_t recs[64];
	struct expect ex[16];
	char buf[16384];
	struct iovec iov[2];
	uint64_t ino;
	uint64_t t0;
	uint64_t t1;
	pid_t me = getpid();
	int pfd[2];
	int nullfd;
	int rfd;
	int fd;
	int ne = 0;
	long n;
	loff_t off;

	make_file("f", 10000, 0644);
	ino = ino_of("f");
	rfd = open_root();
	n = drain(rfd, recs, 64);
	CHECK(n == 1 && recs[0].op == SCOUTFS_NOTIFY_OP_ATTACH, "attached");

#define EX(o, of, l, fl) ex[ne++] = (struct expect){ o, ino, of, l, fl, me, 0, 0 }
	t0 = now_ns(CLOCK_REALTIME);
	fd = open(path_of("f"), O_RDONLY);
	EX(SCOUTFS_NOTIFY_OP_OPEN, 0, 0, OPEN_FLAGS(O_RDONLY));
	if (read(fd, buf, 4096) != 4096)
		die("read");
	EX(SCOUTFS_NOTIFY_OP_READ, 0, 4096, 0);
	if (pread(fd, buf, 100, 5000) != 100)
		die("pread");
	EX(SCOUTFS_NOTIFY_OP_READ, 5000, 100, 0);
	if (pread(fd, buf, sizeof(buf), 8192) != 1808)
		die("pread short");
	EX(SCOUTFS_NOTIFY_OP_READ, 8192, 1808, 0);
	if (pread(fd, buf, 100, 10000) != 0 || pread(fd, buf, 100, 20000) != 0)
		die("pread eof");
	iov[0] = (struct iovec){ buf, 1000 };
	iov[1] = (struct iovec){ buf + 1000, 3000 };
	if (lseek(fd, 100, SEEK_SET) != 100 || readv(fd, iov, 2) != 4000)
		die("readv");
	EX(SCOUTFS_NOTIFY_OP_READ, 100, 4000, 0);
	if (preadv(fd, iov, 2, 9000) != 1000)
		die("preadv");
	EX(SCOUTFS_NOTIFY_OP_READ, 9000, 1000, 0);
	close(fd);

	fd = open(path_of("f"), O_RDWR | O_APPEND | O_NOATIME);
	EX(SCOUTFS_NOTIFY_OP_OPEN, 0, 0, OPEN_FLAGS(O_RDWR | O_APPEND | O_NOATIME));
	nullfd = open("/dev/null", O_WRONLY);
	off = 2000;
	if (sendfile(nullfd, fd, &off, 3000) != 3000)
		die("sendfile");
	EX(SCOUTFS_NOTIFY_OP_READ, 2000, 3000, 0);
	if (pipe(pfd))
		die("pipe");
	off = 7000;
	if (splice(fd, &off, pfd[1], NULL, 2000, 0) != 2000)
		die("splice");
	EX(SCOUTFS_NOTIFY_OP_READ, 7000, 2000, 0);
	close(pfd[0]);
	close(pfd[1]);
	close(nullfd);
	close(fd);
	t1 = now_ns(CLOCK_REALTIME);

	n = drain(rfd, recs, 64);
	match("open, read, pread, short pread, EOF, readv, preadv, sendfile, splice",
	      recs, n, ex, ne, t0, t1);

	/* another user's read: its pid, fsuid and fsgid */
	ne = 0;
	t0 = now_ns(CLOCK_REALTIME);
	me = fork();
	if (me == 0) {
		alarm(30);
		if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
			_exit(2);
		fd = open(path_of("f"), O_RDONLY);
		if (fd < 0 || pread(fd, buf, 10, 20) != 10)
			_exit(3);
		_exit(0);
	}
	CHECK(reap(me, 30) == 0, "uid 1000 child read the file");
	t1 = now_ns(CLOCK_REALTIME);
	ex[ne++] = (struct expect){ SCOUTFS_NOTIFY_OP_OPEN, ino, 0, 0,
				    OPEN_FLAGS(O_RDONLY), me, 1000, 1000 };
	ex[ne++] = (struct expect){ SCOUTFS_NOTIFY_OP_READ, ino, 20, 10, 0,
				    me, 1000, 1000 };
	n = drain(rfd, recs, 64);
	match("uid/gid 1000 child", recs, n, ex, ne, t0, t1);
	close(rfd);
#undef EX
}

static void t_open_flags(void)
{
	static const struct {
		const char *what;
		int flags;
	} cases[] = {
		{ "O_CREAT|O_EXCL|O_WRONLY", O_CREAT | O_EXCL | O_WRONLY },
		{ "O_TRUNC|O_RDWR", O_TRUNC | O_RDWR },
		{ "O_RDONLY|O_CLOEXEC|O_NONBLOCK", O_RDONLY | O_CLOEXEC | O_NONBLOCK },
		{ "O_WRONLY|O_APPEND|O_SYNC", O_WRONLY | O_APPEND | O_SYNC },
	};
	rec_t recs[16];
	int rfd = open_root();
	size_t i;
	long n;
	int fd;

	unlink(path_of("flags"));
	drain(rfd, recs, 16);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fd = open(path_of("flags"), cases[i].flags, 0644);
		if (fd < 0)
			die("open");
		close(fd);
		n = drain(rfd, recs, 16);
		CHECK(n == 1 && recs[0].op == SCOUTFS_NOTIFY_OP_OPEN &&
		      recs[0].ino == ino_of("flags") &&
		      recs[0].flags == OPEN_FLAGS(cases[i].flags),
		      "%s: flags 0%o, want 0%o", cases[i].what,
		      n == 1 ? recs[0].flags : 0, OPEN_FLAGS(cases[i].flags));
	}
	close(rfd);
}

static void t_o_direct(void)
{
	rec_t recs[16];
	void *buf;
	int rfd = open_root();
	int fd;
	long n;

	drain(rfd, recs, 16);
	if (posix_memalign(&buf, 4096, 8192))
		die("memalign");
	fd = open(path_of("f"), O_RDONLY | O_DIRECT);
	if (fd < 0) {
		int err = errno;

		n = drain(rfd, recs, 16);
		CHECK(err == EINVAL && n == 0,
		      "O_DIRECT open fails with %s (no direct_IO in this release) and records nothing (%ld records)",
		      strerror(err), n);
	} else {
		ssize_t r = pread(fd, buf, 4096, 4096);

		close(fd);
		n = drain(rfd, recs, 16);
		CHECK(r == 4096 && n == 2 && recs[0].op == SCOUTFS_NOTIFY_OP_OPEN &&
		      (recs[0].flags & O_DIRECT) &&
		      recs[1].op == SCOUTFS_NOTIFY_OP_READ &&
		      recs[1].offset == 4096 && recs[1].len == 4096,
		      "O_DIRECT open and read recorded (%ld records)", n);
	}
	free(buf);
	close(rfd);
}

static void t_no_noise(void)
{
	rec_t recs[64];
	char buf[4096];
	struct stat st;
	uint64_t ino;
	DIR *d;
	int rfd = open_root();
	int fd;
	int i;
	long n;

	make_file("w", 4096, 0644);
	mkdir(path_of("dir"), 0755);
	make_file("dir/a", 10, 0644);
	ino = ino_of("w");
	drain(rfd, recs, 64);

	fd = open(path_of("w"), O_WRONLY);
	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < 10; i++)
		if (pwrite(fd, buf, sizeof(buf), i * 4096) != sizeof(buf))
			die("pwrite");
	fsync(fd);
	fstat(fd, &st);
	if (ftruncate(fd, 100))
		die("ftruncate");
	close(fd);
	stat(path_of("w"), &st);
	lstat(path_of("dir"), &st);
	d = opendir(path_of("dir"));
	if (!d)
		die("opendir");
	while (readdir(d))
		;
	closedir(d);
	if (rename(path_of("dir/a"), path_of("dir/b")) || unlink(path_of("dir/b")))
		die("rename/unlink");
	n = drain(rfd, recs, 64);
	CHECK(n == 1 && recs[0].op == SCOUTFS_NOTIFY_OP_OPEN &&
	      recs[0].ino == ino && (recs[0].flags & O_ACCMODE) == O_WRONLY,
	      "writes, fsync, fstat, truncate, stat, readdir, rename, unlink: only the write fd's OPEN (%ld records)",
	      n);
	close(rfd);
}

static int child_ioctl_errno(uid_t uid, bool drop_cap)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		rec_t r;
		int fd;

		alarm(30);
		if (drop_cap) {
			struct __user_cap_header_struct h = {
				_LINUX_CAPABILITY_VERSION_3, 0 };
			struct __user_cap_data_struct c[2];

			if (syscall(SYS_capget, &h, c))
				_exit(100);
			c[0].effective &= ~(1u << CAP_SYS_ADMIN);
			if (syscall(SYS_capset, &h, c))
				_exit(101);
		}
		if (uid && setresuid(uid, uid, uid))
			_exit(102);
		fd = open(mnt, O_RDONLY | O_DIRECTORY);
		if (fd < 0)
			_exit(103);
		if (rn_call(fd, &r, 1, 0, 0) >= 0)
			_exit(0);
		_exit(errno);
	}
	st = reap(pid, 30);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void t_errors(void)
{
	struct scoutfs_ioctl_read_notify rn;
	rec_t recs[64];
	char *map;
	uint64_t att;
	int rfd;
	int rfd2;
	int ffd;
	int e;
	long n;
	long n2;
	int i;

	/* before any reader: bad calls must not attach */
	CHECK((e = child_ioctl_errno(65534, false)) == EPERM,
	      "uid 65534: %s", strerror(e));
	CHECK((e = child_ioctl_errno(0, true)) == EPERM,
	      "root without CAP_SYS_ADMIN: %s", strerror(e));
	ffd = open(path_of("f"), O_RDONLY);
	errno = 0;
	CHECK(rn_call(ffd, recs, 1, 0, 0) < 0 && errno == ENOTDIR,
	      "ioctl on a regular file: %s", strerror(errno));
	close(ffd);

	att = counter("notify_reader_attached");
	rfd = open_root();
	{
		const uint64_t W = SCOUTFS_IOC_RN_WAIT;
		struct {
			const char *what;
			uint64_t nr, to, fl;
			uint32_t bnr, bus;
			uint64_t res;
		} bad[] = {
			{ "recs_nr 0", 0, 0, 0, 0, 0, 0 },
			{ "unknown flag bit 2", 1, 0, 1ULL << 2, 0, 0, 0 },
			{ "unknown flag bit 2 with MERGE", 1, 0, 3ULL << 1, 0, 0, 0 },
			{ "unknown flag bit 63", 1, 0, 1ULL << 63, 0, 0, 0 },
			{ "_reserved bit 0", 1, 0, 0, 0, 0, 1 },
			{ "_reserved bit 40", 1, 0, W, 0, 0, 1ULL << 40 },
			{ "_reserved with MERGE", 1, 0, SCOUTFS_IOC_RN_MERGE, 0, 0, 1 },
			{ "batch_nr with MERGE, without WAIT", 8, 0, SCOUTFS_IOC_RN_MERGE, 2, 0, 0 },
			{ "timeout without WAIT", 1, 10, 0, 0, 0, 0 },
			{ "timeout over U32_MAX", 1, 1ULL << 32, W, 0, 0, 0 },
			{ "batch_nr without WAIT", 8, 0, 0, 2, 0, 0 },
			{ "batch_us without WAIT", 8, 0, 0, 2, 100, 0 },
			{ "batch_nr over recs_nr", 4, 0, W, 5, 0, 0 },
			{ "batch_us over 1 s", 8, 0, W, 2, 1000001, 0 },
			{ "batch_us with batch_nr 1", 8, 0, W, 1, 100, 0 },
			{ "batch_us with batch_nr 0", 8, 0, W, 0, 100, 0 },
		};

		for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
			rn = (struct scoutfs_ioctl_read_notify){
				.recs_ptr = (unsigned long)recs,
				.recs_nr = bad[i].nr,
				.timeout_ms = bad[i].to,
				.flags = bad[i].fl,
				.batch_nr = bad[i].bnr,
				.batch_us = bad[i].bus,
				._reserved = bad[i].res,
			};
			errno = 0;
			CHECK(ioctl(rfd, SCOUTFS_IOC_READ_NOTIFY, &rn) < 0 &&
			      errno == EINVAL, "%s: %s", bad[i].what,
			      strerror(errno));
		}
	}
	errno = 0;
	CHECK(ioctl(rfd, SCOUTFS_IOC_READ_NOTIFY, NULL) < 0 && errno == EFAULT,
	      "NULL argument: %s", strerror(errno));
	CHECK(counter("notify_reader_attached") == att,
	      "none of the bad calls attached (%" PRIu64 ")",
	      counter("notify_reader_attached"));

	/* attach, then the others are busy */
	n = drain(rfd, recs, 64);
	CHECK(n == 1 && recs[0].op == SCOUTFS_NOTIFY_OP_ATTACH, "attached");
	rfd2 = open_root();
	errno = 0;
	CHECK(rn_call(rfd2, recs, 1, 0, 0) < 0 && errno == EBUSY,
	      "second file in the same process: %s", strerror(errno));
	close(rfd2);
	CHECK((e = child_ioctl_errno(0, false)) == EBUSY,
	      "another process: %s", strerror(e));
	rfd2 = dup(rfd);
	CHECK(rn_call(rfd2, recs, 1, 0, 0) == 0,
	      "a dup of the reader's fd is the same reader");
	close(rfd2);

	/* errors while attached lose nothing */
	{
		int fd = open(path_of("f"), O_RDONLY);
		char b[16];

		for (i = 0; i < 3; i++)
			if (pread(fd, b, 1, i) != 1)
				die("pread");
		close(fd);
	}
	rn = (struct scoutfs_ioctl_read_notify){
		.recs_ptr = (unsigned long)recs, .recs_nr = 64, .flags = 4 };
	CHECK(ioctl(rfd, SCOUTFS_IOC_READ_NOTIFY, &rn) < 0 && errno == EINVAL,
	      "EINVAL while records wait");
	errno = 0;
	CHECK(rn_call(rfd, NULL, 64, 0, 0) < 0 && errno == EFAULT,
	      "recs_ptr NULL: %s", strerror(errno));
	map = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		die("mmap");
	munmap(map + 2 * 4096, 4096);
	errno = 0;
	CHECK(rn_call(rfd, (rec_t *)(map + 2 * 4096), 64, 0, 0) < 0 &&
	      errno == EFAULT, "unmapped recs_ptr: %s", strerror(errno));
	mprotect(map + 4096, 4096, PROT_READ);
	errno = 0;
	CHECK(rn_call(rfd, (rec_t *)(map + 4096), 64, 0, 0) < 0 &&
	      errno == EFAULT, "read-only recs_ptr: %s", strerror(errno));
	/* two records fit before the read-only page */
	n = rn_call(rfd, (rec_t *)(map + 4096 - 2 * sizeof(rec_t)), 64, 0, 0);
	CHECK(n == 2, "partial copy: 2 records fit before a read-only page: %ld", n);
	n2 = drain(rfd, recs, 64);
	{
		rec_t *p = (rec_t *)(map + 4096 - 2 * sizeof(rec_t));

		CHECK(n == 2 && n2 == 2 && p[0].op == SCOUTFS_NOTIFY_OP_OPEN &&
		      p[1].seq == p[0].seq + 1 && recs[0].seq == p[1].seq + 1 &&
		      recs[1].seq == recs[0].seq + 1 &&
		      recs[1].op == SCOUTFS_NOTIFY_OP_READ && recs[1].offset == 2,
		      "after the faults all 4 records arrive, seq contiguous (%ld + %ld)",
		      n, n2);
	}
	munmap(map, 2 * 4096);
	close(rfd);
}

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

static void t_wait(void)
{
	struct sigaction sa;
	rec_t recs[16];
	uint64_t t0;
	uint64_t ms;
	pid_t pid;
	int rfd = open_root();
	int st;
	long n;

	drain(rfd, recs, 16);
	t0 = now_ns(CLOCK_MONOTONIC);
	n = rn_call(rfd, recs, 16, SCOUTFS_IOC_RN_WAIT, 200);
	ms = (now_ns(CLOCK_MONOTONIC) - t0) / 1000000;
	CHECK(n == 0 && ms >= 150 && ms < 5000,
	      "200 ms wait on an empty ring returns 0 after %" PRIu64 " ms", ms);
	close(rfd);

	/* a reader waiting forever is woken by a read */
	pid = fork();
	if (pid == 0) {
		int fd = open_root();

		alarm(60);
		drain(fd, recs, 16);
		n = rn_call(fd, recs, 16, SCOUTFS_IOC_RN_WAIT, 0);
		_exit(n >= 1 && recs[0].op == SCOUTFS_NOTIFY_OP_OPEN ? 0 : 1);
	}
	if (!wait_sleeping(pid, 30))
		fail("waiting child never blocked");
	{
		int fd = open(path_of("f"), O_RDONLY);
		char b[8];

		if (fd < 0 || pread(fd, b, 8, 0) != 8)
			die("read");
		close(fd);
	}
	st = reap(pid, 30);
	CHECK(st == 0, "a reader waiting without timeout is woken by an open (status %d)", st);

	/* a signal interrupts the wait, the reader stays attached */
	pid = fork();
	if (pid == 0) {
		int fd = open_root();

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_usr1;
		sigaction(SIGUSR1, &sa, NULL);	/* no SA_RESTART */
		alarm(60);
		drain(fd, recs, 16);
		n = rn_call(fd, recs, 16, SCOUTFS_IOC_RN_WAIT, 0);
		if (!(n < 0 && errno == EINTR && got_usr1))
			_exit(1);
		if (rn_call(fd, recs, 16, 0, 0) != 0)
			_exit(2);
		_exit(0);
	}
	if (!wait_sleeping(pid, 30))
		fail("waiting child never blocked");
	kill(pid, SIGUSR1);
	st = reap(pid, 30);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "SIGUSR1 interrupts the wait with EINTR, the reader stays attached (exit %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}


/*
 * Callers built before the batch fields existed pass a struct whose
 * last 16 bytes are `__u64 _reserved[2]`, zeroed.  The command value
 * is the same, and they must get exactly the old behaviour: no wait
 * without the flag, a timed wait that returns 0, and a waiter woken by
 * the first record, not a batch.
 */
struct old_read_notify {
	__u64 recs_ptr;
	__u64 recs_nr;
	__u64 timeout_ms;
	__u64 flags;
	__u64 _reserved[2];
};

/* a fact of the build, not of the run: checked by the compiler */
_Static_assert(sizeof(struct old_read_notify) == sizeof(struct scoutfs_ioctl_read_notify),
	       "the old argument must have the new one's size, so the same command value");

static long old_call(int fd, rec_t *recs, uint64_t nr, uint64_t flags, uint64_t ms)
{
	struct old_read_notify rn = { (unsigned long)recs, nr, ms, flags, { 0, 0 } };

	return ioctl(fd, SCOUTFS_IOC_READ_NOTIFY, &rn);
}

/* a pipe a forked reader says it is ready on, and the fork */
static pid_t reader_child(int *ready, void (*fn)(int fd, int ready_fd))
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		int fd = open_root();
		rec_t recs[64];

		alarm(60);
		close(p[0]);
		drain(fd, recs, 64);	/* attach */
		fn(fd, p[1]);
		_exit(99);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		fail("reader child %d did not get ready", pid);
	*ready = p[0];
	return pid;
}

static void say_ready(int ready_fd)
{
	if (write(ready_fd, "r", 1) != 1)
		_exit(98);
}

static void pread_f(int n)
{
	int fd = open(path_of("f"), O_RDONLY);
	char b[8];
	int i;

	if (fd < 0)
		die("open f");
	for (i = 0; i < n; i++)
		if (pread(fd, b, 8, i) != 8)
			die("pread");
	close(fd);
}

static void old_waiter(int fd, int ready_fd)
{
	rec_t recs[64];
	long n;

	say_ready(ready_fd);
	n = old_call(fd, recs, 64, SCOUTFS_IOC_RN_WAIT, 0);
	_exit(n == 1 && recs[0].op == SCOUTFS_NOTIFY_OP_OPEN ? 0 : 10 + (n > 0 ? n : 0));
}

static void t_old_caller(void)
{
	struct old_read_notify bad;
	rec_t recs[16];
	uint64_t t0;
	uint64_t ms;
	int rfd = open_root();
	int ready;
	pid_t pid;
	int fd;
	int st;
	long n;

	drain(rfd, recs, 16);
	CHECK(old_call(rfd, recs, 16, 0, 0) == 0, "old zeroed call on an empty ring returns 0 at once");
	t0 = now_ns(CLOCK_MONOTONIC);
	n = old_call(rfd, recs, 16, SCOUTFS_IOC_RN_WAIT, 200);
	ms = (now_ns(CLOCK_MONOTONIC) - t0) / 1000000;
	CHECK(n == 0 && ms >= 150 && ms < 5000, "old 200 ms wait returns 0 after %" PRIu64 " ms", ms);
	bad = (struct old_read_notify){ (unsigned long)recs, 16, 0, 0, { 0, 1 } };
	errno = 0;
	CHECK(ioctl(rfd, SCOUTFS_IOC_READ_NOTIFY, &bad) < 0 && errno == EINVAL,
	      "an old caller's non-zero _reserved[1] is still EINVAL");
	close(rfd);

	/* the waiter is woken by the open, before the reads that follow */
	pid = reader_child(&ready, old_waiter);
	if (!wait_sleeping(pid, 30))
		fail("old waiter never blocked");
	fd = open(path_of("f"), O_RDONLY);
	if (fd < 0)
		die("open f");
	st = reap(pid, 30);
	pread_f(4);
	close(fd);
	close(ready);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "an old waiter gets the first record on its own, no batch (exit %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static long batch_call(int fd, rec_t *recs, uint32_t nr, uint32_t us, uint64_t ms)
{
	struct scoutfs_ioctl_read_notify rn = {
		.recs_ptr = (unsigned long)recs, .recs_nr = 64, .timeout_ms = ms,
		.flags = SCOUTFS_IOC_RN_WAIT, .batch_nr = nr, .batch_us = us };

	return ioctl(fd, SCOUTFS_IOC_READ_NOTIFY, &rn);
}

static void batch_sig_waiter(int fd, int ready_fd)
{
	struct sigaction sa;
	rec_t recs[64];
	long n;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);	/* no SA_RESTART */
	pread_f(1);
	say_ready(ready_fd);
	n = batch_call(fd, recs, 64, 0, 0);
	if (!(n < 0 && errno == EINTR && got_usr1))
		_exit(1);
	n = rn_call(fd, recs, 64, 0, 0);
	_exit(n == 2 && recs[0].op == SCOUTFS_NOTIFY_OP_OPEN &&
	      recs[1].op == SCOUTFS_NOTIFY_OP_READ ? 0 : 2);
}

static void t_batch(void)
{
	rec_t recs[64];
	uint64_t t0;
	uint64_t us;
	uint64_t best = ~0ULL;
	pid_t pid;
	int ready;
	int rfd;
	int st;
	int i;
	long n;

	/*
	 * Batch reached: we are the reader, with 3 records in the ring we
	 * wait for 8; a child adds 3 once we sleep, checks that we still
	 * do, and adds the last 2.
	 */
	rfd = open_root();
	drain(rfd, recs, 64);
	pread_f(2);	/* OPEN + 2 READs */
	pid = fork();
	if (pid == 0) {
		bool waiting;

		alarm(60);
		if (!wait_sleeping(getppid(), 30))
			_exit(1);
		pread_f(2);	/* 6 */
		waiting = wait_sleeping(getppid(), 1);
		pread_f(1);	/* 8: OPEN and READ */
		_exit(waiting ? 0 : 2);
	}
	n = batch_call(rfd, recs, 8, 0, 30000);
	st = reap(pid, 30);
	CHECK(n == 8 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "a reader woken by the first records waits on for its batch of 8, "
	      "still asleep with 6 (%ld records, child exit %d)",
	      n, WIFEXITED(st) ? WEXITSTATUS(st) : -1);

	/* timer: one record, a batch of 64 never comes */
	pread_f(1);
	t0 = now_ns(CLOCK_MONOTONIC);
	n = batch_call(rfd, recs, 64, 20000, 10000);
	us = (now_ns(CLOCK_MONOTONIC) - t0) / 1000;
	CHECK(n == 2 && us >= 20000 && us < 2000000,
	      "batch_us 20000: the timer returns the 2 records after %" PRIu64 " us", us);
	for (i = 0; i < 5; i++) {
		pread_f(1);
		t0 = now_ns(CLOCK_MONOTONIC);
		n = batch_call(rfd, recs, 64, 500, 10000);
		us = (now_ns(CLOCK_MONOTONIC) - t0) / 1000;
		if (n != 2 || us < 500)
			fail("batch_us 500: %ld records after %" PRIu64 " us", n, us);
		if (us < best)
			best = us;
	}
	/*
	 * Not before batch_us, and not stuck: how much finer than a jiffy
	 * (4000 us at HZ=250) the hrtimer is depends on the host's load
	 * under emulation, so it is a figure, not a check.
	 */
	CHECK(best >= 500 && best < 2000000,
	      "batch_us 500: the timer returns the 2 records, best of 5 after %" PRIu64 " us",
	      best);
	/* a zero timeout bounds the whole call, batch or not */
	pread_f(1);
	t0 = now_ns(CLOCK_MONOTONIC);
	n = batch_call(rfd, recs, 64, 0, 300);
	us = (now_ns(CLOCK_MONOTONIC) - t0) / 1000;
	CHECK(n == 2 && us >= 250000 && us < 5000000,
	      "without batch_us the call's timeout_ms bounds the batch wait (%" PRIu64 " us)", us);
	/* a full ring is a batch */
	pread_f(600);	/* 1 OPEN + 600 READs: the ring holds 1024, we ask for 64 */
	n = batch_call(rfd, recs, 64, 0, 0);
	CHECK(n == 64, "a ring already holding the batch returns at once: %ld", n);
	drain(rfd, recs, 64);
	while (rn_call(rfd, recs, 64, 0, 0) > 0)
		;
	close(rfd);

	/* a signal interrupts the batch wait; nothing is lost */
	got_usr1 = 0;
	pid = reader_child(&ready, batch_sig_waiter);
	if (!wait_sleeping(pid, 30))
		fail("batch waiter never blocked");
	kill(pid, SIGUSR1);
	st = reap(pid, 30);
	close(ready);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "SIGUSR1 interrupts the batch wait with EINTR and the records stay (exit %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void t_mmap(void)
{
	struct {
		const char *what;
		int oflags, prot, flags;
		off_t off;
		size_t len;
		uint32_t want;
	} maps[] = {
		{ "shared read-only", O_RDONLY, PROT_READ, MAP_SHARED, 4096, 8192,
		  SCOUTFS_NOTIFY_MMAP_SHARED },
		{ "private read-only", O_RDONLY, PROT_READ, MAP_PRIVATE, 0, 4096, 0 },
		{ "private writable", O_RDONLY, PROT_READ | PROT_WRITE, MAP_PRIVATE, 8192, 4096,
		  SCOUTFS_NOTIFY_MMAP_WRITE },
		{ "shared writable", O_RDWR, PROT_READ | PROT_WRITE, MAP_SHARED, 0, 12288,
		  SCOUTFS_NOTIFY_MMAP_SHARED | SCOUTFS_NOTIFY_MMAP_WRITE },
	};
	uint64_t ino;
	rec_t recs[64];
	int rfd = open_root();
	size_t m;
	int fd;
	long n;
	long k;

	make_file("m", 16384, 0644);
	ino = ino_of("m");
	drain(rfd, recs, 64);
	for (m = 0; m < sizeof(maps) / sizeof(maps[0]); m++) {
		volatile char *p;
		int sum = 0;
		size_t i;

		fd = open(path_of("m"), maps[m].oflags);
		if (fd < 0)
			die("open m");
		p = mmap(NULL, maps[m].len, maps[m].prot, maps[m].flags, fd, maps[m].off);
		if (p == MAP_FAILED)
			die("mmap m");
		for (i = 0; i < maps[m].len; i += 4096)
			sum += p[i];	/* faults read the pages: no records */
		munmap((void *)p, maps[m].len);
		close(fd);
		n = drain(rfd, recs, 64);
		for (k = 0; k < n && recs[k].op != SCOUTFS_NOTIFY_OP_MMAP; k++)
			;
		CHECK(n == 2 && recs[0].op == SCOUTFS_NOTIFY_OP_OPEN && k == 1 &&
		      recs[1].ino == ino && recs[1].offset == (uint64_t)maps[m].off &&
		      recs[1].len == maps[m].len && recs[1].flags == maps[m].want &&
		      recs[1].pid == (uint32_t)getpid() && recs[1].uid == 0 &&
		      recs[1].seq == recs[0].seq + 1 && rec_zero_tail(&recs[1]) && sum > 0,
		      "%s mapping of %zu bytes at %lld: OPEN, then MMAP with its range and flags %u "
		      "(got %ld records, flags %u), and no record for the page faults",
		      maps[m].what, maps[m].len, (long long)maps[m].off, maps[m].want, n,
		      k < n ? recs[k].flags : 0);
	}
	close(rfd);
}

static void t_overflow(void)
{
	enum { PROCS = 4, READS = 1250 };
	static rec_t recs[8192];
	uint64_t emitted0 = counter("notify_emitted");
	uint64_t dropped0 = counter("notify_dropped_ring_full");
	uint64_t emitted;
	uint64_t dropped;
	uint64_t gaps = 0;
	uint64_t ino;
	pid_t pids[PROCS];
	bool ok = true;
	int rfd = open_root();
	int p;
	long n;
	long m;
	long i;

	make_file("burst", 65536, 0644);
	ino = ino_of("burst");
	drain(rfd, recs, 8192);
	emitted0 = counter("notify_emitted");
	dropped0 = counter("notify_dropped_ring_full");

	/* the reader stays attached but doesn't drain during the burst */
	for (p = 0; p < PROCS; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			char b[512];
			int fd = open(path_of("burst"), O_RDONLY);

			alarm(120);
			for (i = 0; i < READS; i++)
				if (pread(fd, b, 100 + p, (i % 64) * 1024) != 100 + p)
					_exit(1);
			_exit(0);
		}
	}
	for (p = 0; p < PROCS; p++)
		if (reap(pids[p], 120) != 0)
			ok = false;
	CHECK(ok, "%d processes did %d preads each", PROCS, READS);

	n = drain(rfd, recs, 8192);
	emitted = counter("notify_emitted") - emitted0;
	dropped = counter("notify_dropped_ring_full") - dropped0;
	/*
	 * The newest records were dropped, so the gap shows at the next
	 * record after the burst: make one, it must carry the gap.
	 */
	{
		char b[8];
		int fd = open(path_of("burst"), O_RDONLY);

		if (fd < 0 || pread(fd, b, 8, 0) != 8)
			die("pread");
		close(fd);
	}
	m = drain(rfd, recs + n, 8192 - n);
	CHECK(m == 2 && recs[n].op == SCOUTFS_NOTIFY_OP_OPEN &&
	      recs[n].pid == (uint32_t)getpid() &&
	      recs[n + 1].op == SCOUTFS_NOTIFY_OP_READ &&
	      recs[n + 1].seq == recs[n].seq + 1,
	      "the next OPEN and READ after the burst arrive (%ld)", m);
	if (m == 2 && n > 0)
		gaps += recs[n].seq - recs[n - 1].seq - 1;
	for (i = 0; i < n; i++) {
		rec_t *r = &recs[i];
		bool opn = r->op == SCOUTFS_NOTIFY_OP_OPEN;
		bool good = r->ino == ino && rec_zero_tail(r) &&
			    (opn ? r->len == 0 && r->offset == 0 :
			     r->op == SCOUTFS_NOTIFY_OP_READ &&
			     r->len >= 100 && r->len < 100 + PROCS &&
			     r->offset % 1024 == 0 && r->offset < 65536);
		bool pid_ok = false;

		for (p = 0; p < PROCS; p++)
			if (r->pid == (uint32_t)pids[p] &&
			    (opn || r->len == (uint64_t)(100 + p)))
				pid_ok = true;
		if (!good || !pid_ok) {
			fail("record %ld corrupt: op %u ino %llu off %llu len %llu pid %u",
			     i, r->op, (unsigned long long)r->ino,
			     (unsigned long long)r->offset,
			     (unsigned long long)r->len, r->pid);
			ok = false;
			break;
		}
		if (i > 0) {
			if (r->seq <= recs[i - 1].seq) {
				fail("seq goes back at %ld", i);
				ok = false;
				break;
			}
			gaps += r->seq - recs[i - 1].seq - 1;
		}
	}
	printf("overflow: %d events, %ld received, %" PRIu64 " dropped, %" PRIu64 " seq gaps, %" PRIu64 " emitted\n",
	       PROCS * (READS + 1), n, dropped, gaps, emitted);
	CHECK(ok, "every record well-formed, seq increasing");
	CHECK(n <= RING_NR && dropped > 0, "the ring held at most %d (%ld) and dropped %" PRIu64,
	      RING_NR, n, dropped);
	CHECK(gaps == dropped, "seq gaps %" PRIu64 " == notify_dropped_ring_full delta %" PRIu64,
	      gaps, dropped);
	CHECK((uint64_t)n == emitted && n + dropped == PROCS * (READS + 1),
	      "received %ld == emitted %" PRIu64 ", received + dropped == %d events",
	      n, emitted, PROCS * (READS + 1));
	close(rfd);
}

/*
 * Merged records.  A worker is a child process that does what the test
 * tells it over a pipe, one command at a time, and answers when it is
 * done, so that the order of calls from several processes is exactly
 * the test's without any sleep.
 */
struct worker {
	pid_t pid;
	int cmd;
	int ack;
};

struct wcmd {
	char op;		/* o: open, r: pread, f: setfsuid, q: quit */
	char name[31];
	uint64_t off;
	uint64_t len;
};

static void worker_loop(int cmd, int ack)
{
	static char buf[65536];
	struct wcmd c;
	int fd = -1;
	long r;

	alarm(120);
	while (read(cmd, &c, sizeof(c)) == sizeof(c)) {
		r = 0;
		if (c.op == 'o') {
			if (fd >= 0)
				close(fd);
			fd = open(path_of(c.name), O_RDONLY);
			r = fd < 0 ? -1 : 0;
		} else if (c.op == 'r') {
			r = pread(fd, buf, c.len, c.off);
		} else if (c.op == 'f') {
			setfsuid((uid_t)c.off);
			r = setfsuid(-1);
		} else {
			break;
		}
		if (write(ack, &r, sizeof(r)) != sizeof(r))
			break;
	}
	_exit(0);
}

static struct worker worker_start(void)
{
	struct worker w;
	int c[2];
	int a[2];

	if (pipe(c) || pipe(a))
		die("pipe");
	w.pid = fork();
	if (w.pid == 0) {
		close(c[1]);
		close(a[0]);
		worker_loop(c[0], a[1]);
	}
	close(c[0]);
	close(a[1]);
	w.cmd = c[1];
	w.ack = a[0];
	return w;
}

static long worker_do(struct worker *w, char op, const char *name, uint64_t off, uint64_t len)
{
	struct wcmd c = { .op = op, .off = off, .len = len };
	long r = -1;

	snprintf(c.name, sizeof(c.name), "%s", name ? name : "");
	if (write(w->cmd, &c, sizeof(c)) != sizeof(c) || read(w->ack, &r, sizeof(r)) != sizeof(r))
		fail("worker %d did not answer", w->pid);
	return r;
}

/* n preads of len bytes from offset off on, one after the other */
static void worker_reads(struct worker *w, uint64_t off, uint64_t len, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (worker_do(w, 'r', NULL, off + i * len, len) != (long)len)
			fail("worker %d: pread %" PRIu64 " at %" PRIu64 " failed", w->pid, len,
			     off + i * len);
}

static void worker_stop(struct worker *w)
{
	struct wcmd c = { .op = 'q' };

	if (write(w->cmd, &c, sizeof(c)) != sizeof(c))
		fail("worker %d: quit", w->pid);
	close(w->cmd);
	close(w->ack);
	reap(w->pid, 30);
}

struct mexpect {
	uint32_t op;
	uint64_t ino;
	uint32_t pid;
	uint32_t uid;
	uint64_t offset;
	uint64_t len;
	uint32_t calls;
};

/*
 * compare drained records with what was expected, exactly: fields,
 * the call count and contiguous seqs (a merged call takes none)
 */
static void mmatch(const char *what, const rec_t *recs, long n, const struct mexpect *ex, int nex)
{
	int i;

	for (i = 0; i < nex && i < n; i++) {
		const rec_t *r = &recs[i];
		const struct mexpect *e = &ex[i];

		if (r->op != e->op || r->ino != e->ino || r->pid != e->pid || r->uid != e->uid ||
		    r->offset != e->offset || r->len != e->len || r->calls != e->calls ||
		    (i > 0 && r->seq != recs[i - 1].seq + 1)) {
			fail("%s: record %d: op %u ino %llu pid %u uid %u off %llu len %llu calls %u seq %llu; "
			     "want op %u ino %llu pid %u uid %u off %llu len %llu calls %u", what, i,
			     r->op, (unsigned long long)r->ino, r->pid, r->uid,
			     (unsigned long long)r->offset, (unsigned long long)r->len, r->calls,
			     (unsigned long long)r->seq, e->op, (unsigned long long)e->ino, e->pid,
			     e->uid, (unsigned long long)e->offset, (unsigned long long)e->len,
			     e->calls);
			return;
		}
	}
	CHECK(n == nex, "%s: %ld records, want %d%s", what, n, nex, n == nex ? ", each as expected" : "");
}

#define MR(o, i, p, u, of, l, c) ((struct mexpect){ SCOUTFS_NOTIFY_OP_##o, i, p, u, of, l, c })

static void t_merge_sequential(void)
{
	enum { N = 100, B = 4096 };
	static rec_t recs[256];
	struct mexpect ex[N + 4];
	uint64_t e0, m0;
	uint64_t ino;
	uint32_t me = getpid();
	char buf[B];
	long n;
	int rfd;
	int fd;
	int i;

	make_file("seq", N * B, 0644);
	ino = ino_of("seq");

	/* a reader that asks: one OPEN, one READ covering the N reads */
	rfd = open_root();
	n = drain_merged(rfd, recs, 256);
	CHECK(n == 1 && recs[0].op == SCOUTFS_NOTIFY_OP_ATTACH && recs[0].calls == 1,
	      "a merging reader's ATTACH counts 1 call (%ld records, calls %u)", n,
	      n > 0 ? recs[0].calls : 0);
	e0 = counter("notify_emitted");
	m0 = counter("notify_merged");
	fd = open(path_of("seq"), O_RDONLY);
	for (i = 0; i < N; i++)
		if (pread(fd, buf, B, (off_t)i * B) != B)
			die("pread");
	n = drain_merged(rfd, recs, 256);
	ex[0] = MR(OPEN, ino, me, 0, 0, 0, 1);
	ex[1] = MR(READ, ino, me, 0, 0, N * B, N);
	mmatch("100 sequential 4 KiB preads: OPEN, then one READ of 0..409600 with calls 100",
	       recs, n, ex, 2);
	CHECK(counter("notify_emitted") - e0 == 2 && counter("notify_merged") - m0 == N - 1,
	      "notify_emitted +%" PRIu64 " (want 2), notify_merged +%" PRIu64 " (want %d)",
	      counter("notify_emitted") - e0, counter("notify_merged") - m0, N - 1);

	/* read(2) moving the file position merges the same way */
	if (lseek(fd, 0, SEEK_SET) != 0)
		die("lseek");
	for (i = 0; i < 10; i++)
		if (read(fd, buf, B) != B)
			die("read");
	n = drain_merged(rfd, recs, 256);
	ex[0] = MR(READ, ino, me, 0, 0, 10 * B, 10);
	mmatch("10 read(2)s from offset 0: one READ with calls 10", recs, n, ex, 1);

	/* a drain ends a record: the next call takes a new one */
	for (i = 0; i < 3; i++)
		if (pread(fd, buf, B, (off_t)i * B) != B)
			die("pread");
	n = drain_merged(rfd, recs, 256);
	for (i = 3; i < 6; i++)
		if (pread(fd, buf, B, (off_t)i * B) != B)
			die("pread");
	n += drain_merged(rfd, recs + n, 256 - n);
	ex[0] = MR(READ, ino, me, 0, 0, 3 * B, 3);
	ex[1] = MR(READ, ino, me, 0, 3 * B, 3 * B, 3);
	mmatch("no merge across a drain: 0..3 pages and 3..6 pages are two records, seqs in a row",
	       recs, n, ex, 2);

	/* identical opens merge, different flags or anything between don't */
	close(fd);
	for (i = 0; i < 5; i++)
		close(open(path_of("seq"), O_RDONLY));
	close(open(path_of("seq"), O_RDWR));
	fd = open(path_of("seq"), O_RDONLY);
	if (pread(fd, buf, B, 0) != B)
		die("pread");
	close(open(path_of("seq"), O_RDONLY));
	{
		void *m1 = mmap(NULL, B, PROT_READ, MAP_SHARED, fd, 0);
		void *m2 = mmap(NULL, B, PROT_READ, MAP_SHARED, fd, 0);

		if (m1 == MAP_FAILED || m2 == MAP_FAILED)
			die("mmap");
		munmap(m1, B);
		munmap(m2, B);
	}
	close(fd);
	n = drain_merged(rfd, recs, 256);
	ex[0] = MR(OPEN, ino, me, 0, 0, 0, 5);
	ex[1] = MR(OPEN, ino, me, 0, 0, 0, 1);
	ex[2] = MR(OPEN, ino, me, 0, 0, 0, 1);
	ex[3] = MR(READ, ino, me, 0, 0, B, 1);
	ex[4] = MR(OPEN, ino, me, 0, 0, 0, 1);
	ex[5] = MR(MMAP, ino, me, 0, 0, B, 1);
	ex[6] = MR(MMAP, ino, me, 0, 0, B, 1);
	mmatch("5 identical opens: one OPEN with calls 5; O_RDWR, and O_RDONLY after a READ, "
	       "their own; two identical mmaps two MMAPs", recs, n, ex, 7);
	CHECK(n == 7 && recs[0].flags == recs[2].flags && recs[1].flags != recs[0].flags,
	      "the merged OPEN keeps its flags");
	close(rfd);

	/* a reader that doesn't ask: one record per call, calls 0 */
	rfd = open_root();
	drain(rfd, recs, 256);
	m0 = counter("notify_merged");
	fd = open(path_of("seq"), O_RDONLY);
	for (i = 0; i < N; i++)
		if (pread(fd, buf, B, (off_t)i * B) != B)
			die("pread");
	for (i = 0; i < 3; i++)
		close(open(path_of("seq"), O_RDONLY));
	close(fd);
	n = drain(rfd, recs, 256);
	ex[0] = MR(OPEN, ino, me, 0, 0, 0, 0);
	for (i = 0; i < N; i++)
		ex[i + 1] = MR(READ, ino, me, 0, (uint64_t)i * B, B, 0);
	for (i = 0; i < 3; i++)
		ex[N + 1 + i] = MR(OPEN, ino, me, 0, 0, 0, 0);
	mmatch("a reader that doesn't ask: OPEN, 100 READs and 3 identical OPENs, one record per call, calls 0",
	       recs, n, ex, N + 4);
	CHECK(counter("notify_merged") == m0, "and nothing merged (notify_merged +%" PRIu64 ")",
	      counter("notify_merged") - m0);
	drain(rfd, recs, 256);
	close(rfd);
}

/* offsets that don't continue, and different processes or credentials */
static void t_merge_shapes(void)
{
	enum { B = 4096 };
	rec_t recs[64];
	struct mexpect ex[16];
	struct worker a, b;
	uint64_t fa, fb;
	long n;
	int rfd;

	make_file("ma", 32 * B, 0644);
	make_file("mb", 32 * B, 0644);
	fa = ino_of("ma");
	fb = ino_of("mb");
	rfd = open_root();
	drain_merged(rfd, recs, 64);
	a = worker_start();
	b = worker_start();

	/* overlapping, backwards, the same range again, a hole */
	worker_do(&a, 'o', "ma", 0, 0);
	worker_do(&a, 'r', NULL, 0, B);
	worker_do(&a, 'r', NULL, B / 2, B);		/* overlaps */
	worker_do(&a, 'r', NULL, 8 * B, B);
	worker_do(&a, 'r', NULL, 7 * B, B);		/* backwards */
	worker_do(&a, 'r', NULL, 7 * B, B);		/* the same again */
	worker_do(&a, 'r', NULL, 10 * B, B);		/* a hole */
	worker_do(&a, 'r', NULL, 11 * B, 100);		/* continues, short */
	worker_do(&a, 'r', NULL, 11 * B + 100, 50);	/* continues */
	n = drain_merged(rfd, recs, 64);
	ex[0] = MR(OPEN, fa, a.pid, 0, 0, 0, 1);
	ex[1] = MR(READ, fa, a.pid, 0, 0, B, 1);
	ex[2] = MR(READ, fa, a.pid, 0, B / 2, B, 1);
	ex[3] = MR(READ, fa, a.pid, 0, 8 * B, B, 1);
	ex[4] = MR(READ, fa, a.pid, 0, 7 * B, B, 1);
	ex[5] = MR(READ, fa, a.pid, 0, 7 * B, B, 1);
	ex[6] = MR(READ, fa, a.pid, 0, 10 * B, B + 150, 3);
	mmatch("overlapping, backwards and repeated reads are records of their own; "
	       "reads that continue after a hole merge, whatever their sizes", recs, n, ex, 7);

	/* interleaved: two processes, two files */
	worker_do(&b, 'o', "mb", 0, 0);
	worker_do(&a, 'o', "ma", 0, 0);
	worker_reads(&a, 0, B, 3);
	worker_reads(&b, 0, B, 2);
	worker_reads(&a, 3 * B, B, 3);
	worker_reads(&b, 2 * B, B, 1);
	worker_reads(&a, 6 * B, B, 1);
	worker_reads(&a, 7 * B, B, 1);
	n = drain_merged(rfd, recs, 64);
	ex[0] = MR(OPEN, fb, b.pid, 0, 0, 0, 1);
	ex[1] = MR(OPEN, fa, a.pid, 0, 0, 0, 1);
	ex[2] = MR(READ, fa, a.pid, 0, 0, 3 * B, 3);
	ex[3] = MR(READ, fb, b.pid, 0, 0, 2 * B, 2);
	ex[4] = MR(READ, fa, a.pid, 0, 3 * B, 3 * B, 3);
	ex[5] = MR(READ, fb, b.pid, 0, 2 * B, B, 1);
	ex[6] = MR(READ, fa, a.pid, 0, 6 * B, 2 * B, 2);
	mmatch("interleaved, two processes on two files: a run of one process's sequential reads "
	       "is one record, the other's calls between end it", recs, n, ex, 7);

	/* a different process continuing the same file doesn't merge */
	worker_do(&b, 'o', "ma", 0, 0);
	worker_reads(&a, 8 * B, B, 1);
	worker_reads(&b, 9 * B, B, 1);
	worker_reads(&a, 10 * B, B, 1);
	n = drain_merged(rfd, recs, 64);
	ex[0] = MR(OPEN, fa, b.pid, 0, 0, 0, 1);
	ex[1] = MR(READ, fa, a.pid, 0, 8 * B, B, 1);
	ex[2] = MR(READ, fa, b.pid, 0, 9 * B, B, 1);
	ex[3] = MR(READ, fa, a.pid, 0, 10 * B, B, 1);
	mmatch("another process's read where the record ends is a record of its own",
	       recs, n, ex, 4);

	/* different credentials, the same process */
	worker_reads(&a, 0, B, 1);
	CHECK(worker_do(&a, 'f', NULL, 1000, 0) == 1000, "the worker's fsuid is 1000");
	worker_reads(&a, B, B, 2);
	worker_do(&a, 'f', NULL, 0, 0);
	worker_reads(&a, 3 * B, B, 1);
	n = drain_merged(rfd, recs, 64);
	ex[0] = MR(READ, fa, a.pid, 0, 0, B, 1);
	ex[1] = MR(READ, fa, a.pid, 1000, B, 2 * B, 2);
	ex[2] = MR(READ, fa, a.pid, 0, 3 * B, B, 1);
	mmatch("a change of fsuid ends the record: uid 0, 1000, 0 are three records",
	       recs, n, ex, 3);
	worker_stop(&a);
	worker_stop(&b);
	close(rfd);
}

/*
 * Reads racing the drain: a child reads a file sequentially while we
 * drain as fast as we can.  Whatever the interleaving, every call must
 * be in exactly one record: the records of the child's reads tile the
 * file in order, each covering exactly calls times the read size.
 */
static void t_merge_race(void)
{
	enum { N = 20000, L = 16 };
	static rec_t recs[4096];
	uint64_t e0, m0, d0;
	uint64_t next = 0;
	uint64_t calls = 0;
	uint64_t nrec = 0;
	uint64_t last_seq = 0;
	uint64_t gaps = 0;
	uint64_t drains = 0;
	uint64_t ino;
	bool ok = true;
	pid_t pid;
	int rfd;
	int st = -1;
	long n;
	long i;

	make_file("race", N * L, 0644);
	ino = ino_of("race");
	rfd = open_root();
	drain_merged(rfd, recs, 4096);
	e0 = counter("notify_emitted");
	m0 = counter("notify_merged");
	d0 = counter("notify_dropped_ring_full");
	pid = fork();
	if (pid == 0) {
		char b[L];
		int fd = open(path_of("race"), O_RDONLY);

		alarm(120);
		for (i = 0; fd >= 0 && i < N; i++)
			if (pread(fd, b, L, i * L) != L)
				_exit(1);
		_exit(fd < 0 ? 2 : 0);
	}
	for (bool done = false;;) {
		done = done || waitpid(pid, &st, WNOHANG) == pid;
		n = rn_call(rfd, recs, 4096, SCOUTFS_IOC_RN_MERGE, 0);
		if (n < 0) {
			fail("drain: %s", strerror(errno));
			break;
		}
		drains++;
		for (i = 0; i < n && ok; i++) {
			const rec_t *r = &recs[i];

			if (last_seq)
				gaps += r->seq - last_seq - 1;
			last_seq = r->seq;
			if (r->op != SCOUTFS_NOTIFY_OP_READ)
				continue;
			if (r->ino != ino || r->pid != (uint32_t)pid || r->offset != next ||
			    r->calls == 0 || r->len != (uint64_t)r->calls * L) {
				fail("record seq %llu: off %llu len %llu calls %u, want off %llu and len calls * %d",
				     (unsigned long long)r->seq, (unsigned long long)r->offset,
				     (unsigned long long)r->len, r->calls, (unsigned long long)next, L);
				ok = false;
			}
			next = r->offset + r->len;
			calls += r->calls;
			nrec++;
		}
		if (done && n == 0)
			break;
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did %d preads of %d bytes", N, L);
	printf("merge race: %d reads in %" PRIu64 " records over %" PRIu64 " drains\n", N, nrec,
	       drains);
	CHECK(ok && next == N * L && calls == N,
	      "the READ records tile 0..%d in order, each calls * %d bytes: %" PRIu64 " calls, to %" PRIu64,
	      N * L, L, calls, next);
	CHECK(nrec > 1 && nrec < N,
	      "reads and drains raced: %" PRIu64 " records for %d calls (more than one, fewer than the calls)",
	      nrec, N);
	CHECK(gaps == counter("notify_dropped_ring_full") - d0 &&
	      counter("notify_merged") - m0 == calls - nrec &&
	      counter("notify_emitted") - e0 == nrec + 1,
	      "seq gaps %" PRIu64 " == dropped +%" PRIu64 ", merged +%" PRIu64 " == calls - records, "
	      "emitted +%" PRIu64 " == records + the OPEN", gaps,
	      counter("notify_dropped_ring_full") - d0, counter("notify_merged") - m0,
	      counter("notify_emitted") - e0);
	close(rfd);
}

/*
 * A full ring with merging: 4 processes reading runs of sequential
 * 1 KiB reads into a reader that doesn't drain.  Every call is in a
 * record or was dropped, and the seq gaps are exactly the drops.
 */
static void t_merge_overflow(void)
{
	enum { PROCS = 4, READS = 3000, L = 1024 };
	static rec_t recs[8192];
	uint64_t e0, m0, d0;
	uint64_t calls = 0;
	uint64_t gaps = 0;
	uint64_t dropped;
	pid_t pids[PROCS];
	bool ok = true;
	int rfd = open_root();
	int p;
	long n;
	long m;
	long i;

	make_file("mburst", 65536, 0644);
	drain_merged(rfd, recs, 8192);
	e0 = counter("notify_emitted");
	m0 = counter("notify_merged");
	d0 = counter("notify_dropped_ring_full");
	for (p = 0; p < PROCS; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			char b[L];
			int fd = open(path_of("mburst"), O_RDONLY);

			alarm(120);
			for (i = 0; i < READS; i++)
				if (pread(fd, b, L, ((i * 7 / 8) % 64) * L) != L)
					_exit(1);
			_exit(0);
		}
	}
	for (p = 0; p < PROCS; p++)
		if (reap(pids[p], 120) != 0)
			ok = false;
	CHECK(ok, "%d processes did %d preads each", PROCS, READS);
	n = drain_merged(rfd, recs, 8192);
	dropped = counter("notify_dropped_ring_full") - d0;
	/* the gap of the newest drops shows at the next record: make one */
	close(open(path_of("mburst"), O_RDONLY));
	m = drain_merged(rfd, recs + n, 8192 - n);
	CHECK(m == 1 && recs[n].op == SCOUTFS_NOTIFY_OP_OPEN && recs[n].pid == (uint32_t)getpid(),
	      "the next OPEN after the burst arrives (%ld)", m);
	for (i = 0; i < n + m && ok; i++) {
		const rec_t *r = &recs[i];
		bool pid_ok = false;

		for (p = 0; p < PROCS; p++)
			pid_ok |= r->pid == (uint32_t)pids[p];
		if (i > 0)
			gaps += r->seq - recs[i - 1].seq - 1;
		if (i == n)
			break;
		calls += r->calls;
		if (!pid_ok || r->calls == 0 ||
		    (r->op == SCOUTFS_NOTIFY_OP_READ &&
		     (r->len != (uint64_t)r->calls * L || r->offset % L || r->offset + r->len > 65536)) ||
		    (r->op == SCOUTFS_NOTIFY_OP_OPEN && r->calls != 1)) {
			fail("record %ld: op %u pid %u off %llu len %llu calls %u", i, r->op, r->pid,
			     (unsigned long long)r->offset, (unsigned long long)r->len, r->calls);
			ok = false;
		}
	}
	printf("merge overflow: %d calls, %ld records holding %" PRIu64 " calls, %" PRIu64 " dropped\n",
	       PROCS * (READS + 1), n, calls, dropped);
	CHECK(ok && n <= RING_NR && dropped > 0,
	      "every record well-formed (len == calls * %d), the ring held %ld and dropped %" PRIu64,
	      L, n, dropped);
	CHECK(gaps == dropped, "seq gaps %" PRIu64 " == notify_dropped_ring_full +%" PRIu64, gaps, dropped);
	CHECK(calls + dropped == PROCS * (READS + 1) &&
	      counter("notify_merged") - m0 == calls - n &&
	      counter("notify_emitted") - e0 == (uint64_t)(n + m),
	      "calls in records %" PRIu64 " + dropped %" PRIu64 " == %d calls; merged +%" PRIu64
	      ", emitted +%" PRIu64, calls, dropped, PROCS * (READS + 1),
	      counter("notify_merged") - m0, counter("notify_emitted") - e0);
	close(rfd);
}

/*
 * A merged record stands only for calls made before the next seq: once
 * a call was dropped after it (the ring full), a call that continues it
 * is not merged into it but takes a record of its own (dropped too
 * here, the ring being full), so the seq gap says where it was.
 */
static void t_merge_after_drop(void)
{
	enum { B = 4096 };
	static rec_t recs[RING_NR + 16];
	struct worker w;
	uint64_t d0;
	uint64_t ino;
	long n;
	int rfd;
	int fd;
	int i;
	char b[B];

	make_file("mdrop", 4 * B, 0644);
	make_file("mfill", RING_NR + 2, 0644);
	ino = ino_of("mdrop");
	rfd = open_root();
	drain_merged(rfd, recs, RING_NR + 16);
	w = worker_start();
	worker_do(&w, 'o', "mdrop", 0, 0);	/* its OPEN: slot 1 */
	fd = open(path_of("mfill"), O_RDONLY);	/* slot 2 */
	/* 1021 one byte reads backwards, none merged: slots 3 to 1023 */
	for (i = RING_NR - 3; i > 0; i--)
		if (pread(fd, b, 1, i) != 1)
			die("pread");
	worker_reads(&w, 0, B, 1);		/* slot 1024, the ring is full */
	worker_reads(&w, B, B, 1);		/* merged into it: no slot needed */
	d0 = counter("notify_dropped_ring_full");
	if (pread(fd, b, 1, 0) != 1)		/* dropped */
		die("pread");
	worker_reads(&w, 2 * B, B, 1);		/* continues it, but after a drop */
	n = drain_merged(rfd, recs, RING_NR + 16);
	close(open(path_of("mdrop"), O_RDONLY));	/* the gap shows at the next record */
	n += drain_merged(rfd, recs + n, RING_NR + 16 - n);
	CHECK(n == RING_NR + 1 && recs[RING_NR - 1].op == SCOUTFS_NOTIFY_OP_READ &&
	      recs[RING_NR - 1].ino == ino && recs[RING_NR - 1].pid == (uint32_t)w.pid &&
	      recs[RING_NR - 1].offset == 0 && recs[RING_NR - 1].len == 2 * B &&
	      recs[RING_NR - 1].calls == 2,
	      "the full ring's newest record took the call that continued it, before the drop: "
	      "len %llu calls %u (want 8192, 2)", (unsigned long long)recs[RING_NR - 1].len,
	      recs[RING_NR - 1].calls);
	CHECK(n == RING_NR + 1 && counter("notify_dropped_ring_full") - d0 == 2 &&
	      recs[RING_NR].seq == recs[RING_NR - 1].seq + 3,
	      "the call after the drop was not merged: 2 dropped (+%" PRIu64 "), a seq gap of 2 after the record",
	      counter("notify_dropped_ring_full") - d0);
	close(fd);
	worker_stop(&w);
	close(rfd);
}

/*
 * The reader copies records without the lock, so a call must never be
 * merged into a record it is copying.  Hold a copy open: the one
 * record is copied to a buffer whose second page is missing and
 * registered with userfaultfd, 40 bytes into the record (its offset and
 * len on the first page, its calls on the second).  The copy stops
 * there until a child has had a worker read on where the record ends,
 * and then fills the page.  The record must arrive as it was when the
 * copy began, and the read as a record of its own.
 */
static void t_merge_copy_stall(void)
{
	enum { B = 4096 };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	rec_t recs[8];
	rec_t got;
	struct worker w;
	uint64_t ino;
	char *map;
	pid_t handler;
	long n;
	int uffd;
	int rfd;
	int st;

	make_file("mstall", 4 * B, 0644);
	ino = ino_of("mstall");
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	map = mmap(NULL, 2 * B, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (uffd < 0 || map == MAP_FAILED || ioctl(uffd, UFFDIO_API, &api)) {
		fail("userfaultfd: %s", strerror(errno));
		return;
	}
	map[0] = 1;	/* the first page is there, the second is not */
	reg = (struct uffdio_register){ .range = { (unsigned long)map + B, B },
					.mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		fail("UFFDIO_REGISTER: %s", strerror(errno));
		return;
	}
	rfd = open_root();
	drain_merged(rfd, recs, 8);
	w = worker_start();
	worker_do(&w, 'o', "mstall", 0, 0);
	worker_reads(&w, 0, B, 1);
	drain_merged(rfd, recs, 8);		/* the OPEN and that READ */
	worker_reads(&w, B, B, 1);		/* the record to copy: B..2B */

	handler = fork();
	if (handler == 0) {
		static char zero[B];
		struct uffdio_copy cp = { .dst = (unsigned long)map + B, .src = (unsigned long)zero,
					  .len = B };
		struct uffd_msg msg;

		alarm(60);
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
			_exit(2);
		/* the copy has begun and waits: a read that continues the record */
		if (worker_do(&w, 'r', NULL, 2 * B, B) != B)
			_exit(3);
		_exit(ioctl(uffd, UFFDIO_COPY, &cp) ? 4 : 0);
	}
	n = rn_call(rfd, (rec_t *)(map + B - 40), 1, SCOUTFS_IOC_RN_MERGE, 0);
	st = reap(handler, 60);
	memcpy(&got, map + B - 40, sizeof(got));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && n == 1,
	      "the copy stopped at the missing page until a read was made (handler exit %d, %ld copied)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1, n);
	CHECK(n == 1 && got.op == SCOUTFS_NOTIFY_OP_READ && got.ino == ino && got.offset == B &&
	      got.len == B && got.calls == 1,
	      "the record being copied is not merged into: offset %llu len %llu calls %u (want 4096, 4096, 1)",
	      (unsigned long long)got.offset, (unsigned long long)got.len, got.calls);
	n = drain_merged(rfd, recs, 8);
	CHECK(n == 1 && recs[0].op == SCOUTFS_NOTIFY_OP_READ && recs[0].offset == 2 * B &&
	      recs[0].len == B && recs[0].calls == 1 && recs[0].seq == got.seq + 1,
	      "the read made during the copy is a record of its own, the next seq (%ld records)", n);
	worker_stop(&w);
	close(rfd);
	close(uffd);
	munmap(map, 2 * B);
}

static void t_sigkill_detach(void)
{
	rec_t recs[16];
	pid_t pid;
	int rfd;
	long n;

	pid = fork();
	if (pid == 0) {
		int fd = open_root();

		alarm(60);
		drain(fd, recs, 16);
		rn_call(fd, recs, 16, SCOUTFS_IOC_RN_WAIT, 0);
		_exit(1);
	}
	if (!wait_sleeping(pid, 30))
		fail("reader child never blocked");
	kill(pid, SIGKILL);
	reap(pid, 30);
	rfd = open_root();
	n = rn_call(rfd, recs, 16, 0, 0);
	CHECK(n >= 1 && recs[n - 1].op == SCOUTFS_NOTIFY_OP_ATTACH &&
	      recs[n - 1].pid == (uint32_t)getpid(),
	      "after SIGKILL of a reader waiting in the ioctl a new reader attaches (%ld, %s)",
	      n, n < 0 ? strerror(errno) : "ok");
	close(rfd);

	pid = fork();
	if (pid == 0) {
		int fd = open_root();

		drain(fd, recs, 16);
		_exit(0);	/* exits without closing */
	}
	reap(pid, 30);
	rfd = open_root();
	n = rn_call(rfd, recs, 16, 0, 0);
	CHECK(n >= 1 && recs[n - 1].op == SCOUTFS_NOTIFY_OP_ATTACH,
	      "after a reader exits without closing a new reader attaches (%ld)", n);
	close(rfd);
}

static void t_counters(void)
{
	uint64_t e = counter("notify_emitted");
	uint64_t d = counter("notify_dropped_ring_full");
	uint64_t a = counter("notify_reader_attached");
	rec_t recs[64];
	int rfd = open_root();
	long n = drain(rfd, recs, 64);
	uint64_t last = n > 0 ? recs[n - 1].seq : 0;

	/* every record generated has a seq: the last one is the total */
	CHECK(n >= 1 && last == counter("notify_emitted") +
	      counter("notify_dropped_ring_full"),
	      "last seq %" PRIu64 " == emitted %" PRIu64 " + dropped %" PRIu64,
	      last, counter("notify_emitted"),
	      counter("notify_dropped_ring_full"));
	CHECK(a >= 10 && e > 0 && d > 0,
	      "counters: emitted %" PRIu64 ", dropped %" PRIu64 ", attached %" PRIu64,
	      e, d, a);
	close(rfd);
}

static void t_umount(void)
{
	rec_t recs[16];
	char refcnt[32] = "";
	uint64_t end;
	pid_t pid;
	int rfd = open_root();
	int st;

	drain(rfd, recs, 16);
	errno = 0;
	CHECK(umount2(mnt, 0) < 0 && errno == EBUSY,
	      "umount with a reader attached: %s", strerror(errno));
	close(rfd);

	pid = fork();
	if (pid == 0) {
		int fd = open_root();
		long n;

		alarm(60);
		drain(fd, recs, 16);
		n = rn_call(fd, recs, 16, SCOUTFS_IOC_RN_WAIT, 3000);
		_exit(n == 0 ? 0 : 1);
	}
	if (!wait_sleeping(pid, 30))
		fail("reader child never blocked");
	end = now_ns(CLOCK_MONOTONIC);
	CHECK(umount2(mnt, MNT_DETACH) == 0,
	      "lazy umount while a reader waits in the ioctl returns after %" PRIu64 " ms",
	      (now_ns(CLOCK_MONOTONIC) - end) / 1000000);
	st = reap(pid, 30);
	CHECK(st == 0, "the waiting reader's ioctl times out normally (status %d)", st);

	CHECK(wait_module_unused(60, refcnt, sizeof(refcnt)),
	      "the superblock is torn down once the reader is gone: module refcnt %s",
	      refcnt);
}

static const struct test_case tests[] = {
	{ "no_reader", t_no_reader },
	{ "attach", t_attach },
	{ "open_read", t_open_read },
	{ "open_flags", t_open_flags },
	{ "o_direct", t_o_direct },
	{ "no_noise", t_no_noise },
	{ "errors", t_errors },
	{ "wait", t_wait },
	{ "old_caller", t_old_caller },
	{ "batch", t_batch },
	{ "mmap", t_mmap },
	{ "overflow", t_overflow },
	{ "merge_sequential", t_merge_sequential },
	{ "merge_shapes", t_merge_shapes },
	{ "merge_race", t_merge_race },
	{ "merge_overflow", t_merge_overflow },
	{ "merge_after_drop", t_merge_after_drop },
	{ "merge_copy_stall", t_merge_copy_stall },
	{ "sigkill_detach", t_sigkill_detach },
	{ "counters", t_counters },
	{ "umount", t_umount },
};

int main(int argc, char **argv)
{
	return run_tests(argc, argv, "kernel-test", tests, sizeof(tests) / sizeof(tests[0]));
}
