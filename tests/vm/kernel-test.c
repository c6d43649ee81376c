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
			{ "unknown flag bit 1", 1, 0, 1ULL << 1, 0, 0, 0 },
			{ "unknown flag bit 63", 1, 0, 1ULL << 63, 0, 0, 0 },
			{ "_reserved bit 0", 1, 0, 0, 0, 0, 1 },
			{ "_reserved bit 40", 1, 0, W, 0, 0, 1ULL << 40 },
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

	CHECK(sizeof(struct old_read_notify) == sizeof(struct scoutfs_ioctl_read_notify),
	      "the old argument has the new one's size (%zu), so the same command value",
	      sizeof(struct old_read_notify));
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
	{ "sigkill_detach", t_sigkill_detach },
	{ "counters", t_counters },
	{ "umount", t_umount },
};

int main(int argc, char **argv)
{
	return run_tests(argc, argv, "kernel-test", tests, sizeof(tests) / sizeof(tests[0]));
}
