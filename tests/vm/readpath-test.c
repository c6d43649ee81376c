/*
 * The read-path test of scoutfs-notify: every way a process can read a
 * file on scoutfs, and the exact records each one produces, run inside
 * the VM as root on a fresh mount (tests/vm/guest.sh, suite readpath,
 * part of suite kernel), once for each data device:
 *
 *	READPATH_DEV=brd|dm-delay|virtio [READPATH_DM=<dm name>] \
 *		readpath-test <mountpoint> [-t <test>]
 *
 * brd completes reads inside submit_bio, dm-delay (over brd) later in
 * a kworker, virtio-blk in its interrupt handler: so asynchronous
 * direct reads (aio, io_uring) complete inline on brd and after
 * read_iter returned -EIOCBQUEUED on the other two, where they are
 * recorded by their completion.  With READPATH_DM the data device is
 * that device-mapper device, and the tests that must see a read queued
 * hold it with `dmsetup suspend --noflush` (the bio waits in dm until
 * the resume, so the read can't complete earlier, with no sleeps or
 * timing involved).
 *
 * Direct I/O exists where upstream's compat layer enabled the iomap
 * read path (KC_USE_IOMAP_FOR_IO): the host says so with notify.iomap=1
 * on the kernel command line (scripts/vm-run.sh, from the build).
 * Without it O_DIRECT opens must fail with EINVAL and record nothing.
 *
 * aio and io_uring are used through their system calls (linux/aio_abi.h,
 * linux/io_uring.h), so the static test needs no library.  The program
 * copies itself to the mount for the execve test, which runs it with
 * --exit.  Each test prints PASS or FAIL lines and the run ends with
 * "readpath-test: N passed, N failed".
 */
#include "notify-lib.h"
#include <elf.h>
#include <sys/sysmacros.h>
#include <linux/aio_abi.h>
#include <linux/io_uring.h>

#define FSIZE		(65536 + 100)	/* the test file: 16 blocks and a bit */
#define BLK		4096
/* the kernel's NOTIFY_DIO_NR: queued direct reads it records at completion */
#define DIO_SLOTS	64
#define MAXREC		256

static const char *dev;		/* brd, dm-delay or virtio */
static const char *dm;		/* the dm device's name, or NULL */
static bool iomap;		/* direct I/O is expected to work */
static uint64_t ino;		/* the test file's */
static int rfd = -1;		/* the reader */
static rec_t recs[MAXREC];
static struct expect ex[MAXREC];
static int ne;
static uint64_t t0;
static char *abuf;		/* 64 KiB + a block, block aligned */

/* a fresh list of expectations; what ran before is drained away */
static void begin(void)
{
	drain(rfd, recs, MAXREC);
	ne = 0;
	t0 = now_ns(CLOCK_REALTIME);
}

static void want(uint32_t op, uint64_t off, uint64_t len, uint32_t flags,
		 pid_t pid, uint32_t id)
{
	ex[ne++] = (struct expect){ op, ino, off, len, flags, (uint32_t)pid, id, id };
}

#define WANT_READ(off, len) want(SCOUTFS_NOTIFY_OP_READ, off, len, 0, getpid(), 0)
#define WANT_OPEN(fl) want(SCOUTFS_NOTIFY_OP_OPEN, 0, 0, OPEN_FLAGS(fl), getpid(), 0)

/* the records since begin() must be exactly those wanted */
static bool check(const char *what)
{
	long n = drain(rfd, recs, MAXREC);

	return match(what, recs, n, ex, ne, t0, now_ns(CLOCK_REALTIME));
}

static int open_f(int flags)
{
	int fd = open(path_of("rp"), flags);

	if (fd < 0 && !(flags & O_DIRECT))
		die("open rp");
	return fd;
}

/* ---- aio and io_uring through their system calls ---- */

static aio_context_t aio_new(unsigned int nr)
{
	aio_context_t ctx = 0;

	if (syscall(__NR_io_setup, nr, &ctx))
		die("io_setup");
	return ctx;
}

static void aio_prep(struct iocb *cb, int fd, void *buf, size_t len, off_t off)
{
	*cb = (struct iocb){ .aio_lio_opcode = IOCB_CMD_PREAD, .aio_fildes = fd,
			     .aio_buf = (unsigned long)buf, .aio_nbytes = len,
			     .aio_offset = off, .aio_data = (unsigned long)off };
}

static long aio_submit(aio_context_t ctx, long nr, struct iocb **cbs)
{
	return syscall(__NR_io_submit, ctx, nr, cbs);
}

/* reap nr events (bounded: 60 s), their results in res[] by submission order */
static long aio_reap(aio_context_t ctx, long nr, struct io_event *evs)
{
	struct timespec ts = { 60, 0 };
	long got = 0;
	long r;

	while (got < nr) {
		r = syscall(__NR_io_getevents, ctx, 1, nr - got, evs + got, &ts);
		if (r <= 0)
			return got;
		got += r;
	}
	return got;
}

/* one read through aio: its result (bytes or -errno) */
static long aio_read1(int fd, void *buf, size_t len, off_t off)
{
	aio_context_t ctx = aio_new(1);
	struct iocb cb;
	struct iocb *cbs[1] = { &cb };
	struct io_event ev;
	long ret;

	aio_prep(&cb, fd, buf, len, off);
	if (aio_submit(ctx, 1, cbs) != 1)
		ret = -errno;
	else
		ret = aio_reap(ctx, 1, &ev) == 1 ? (long)ev.res : -ETIMEDOUT;
	syscall(__NR_io_destroy, ctx);
	return ret;
}

struct uring {
	int fd;
	unsigned int *sq_tail, *sq_mask, *sq_array;
	unsigned int *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq;
	void *cq;
	size_t sq_sz, cq_sz, sqes_sz;
};

/* io_uring_setup and its three mappings; false (errno set) if refused */
static bool uring_new(struct uring *u, unsigned int entries)
{
	struct io_uring_params p = { 0 };

	u->fd = syscall(__NR_io_uring_setup, entries, &p);
	if (u->fd < 0)
		return false;
	u->sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	u->cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	u->sqes_sz = p.sq_entries * sizeof(struct io_uring_sqe);
	u->sq = mmap(NULL, u->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		     u->fd, IORING_OFF_SQ_RING);
	u->cq = mmap(NULL, u->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		     u->fd, IORING_OFF_CQ_RING);
	u->sqes = mmap(NULL, u->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       u->fd, IORING_OFF_SQES);
	if (u->sq == MAP_FAILED || u->cq == MAP_FAILED || u->sqes == MAP_FAILED)
		die("io_uring mmap");
	u->sq_tail = (unsigned int *)((char *)u->sq + p.sq_off.tail);
	u->sq_mask = (unsigned int *)((char *)u->sq + p.sq_off.ring_mask);
	u->sq_array = (unsigned int *)((char *)u->sq + p.sq_off.array);
	u->cq_head = (unsigned int *)((char *)u->cq + p.cq_off.head);
	u->cq_tail = (unsigned int *)((char *)u->cq + p.cq_off.tail);
	u->cq_mask = (unsigned int *)((char *)u->cq + p.cq_off.ring_mask);
	u->cqes = (struct io_uring_cqe *)((char *)u->cq + p.cq_off.cqes);
	return true;
}

static void uring_free(struct uring *u)
{
	munmap(u->sq, u->sq_sz);
	munmap(u->cq, u->cq_sz);
	munmap(u->sqes, u->sqes_sz);
	close(u->fd);
}

/* queue an IORING_OP_READ (sqe_flags: e.g. IOSQE_ASYNC, run by an iou-wrk thread) */
static void uring_read(struct uring *u, int fd, void *buf, unsigned int len,
		       off_t off, unsigned char sqe_flags)
{
	unsigned int tail = *u->sq_tail;
	unsigned int i = tail & *u->sq_mask;
	struct io_uring_sqe *sqe = &u->sqes[i];

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_READ;
	sqe->flags = sqe_flags;
	sqe->fd = fd;
	sqe->addr = (unsigned long)buf;
	sqe->len = len;
	sqe->off = off;
	sqe->user_data = off;
	u->sq_array[i] = i;
	__atomic_store_n(u->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

static long uring_enter(struct uring *u, unsigned int submit, unsigned int wait)
{
	return syscall(__NR_io_uring_enter, u->fd, submit, wait,
		       wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
}

/* take one completion: false when there is none */
static bool uring_cqe(struct uring *u, struct io_uring_cqe *cqe)
{
	unsigned int head = *u->cq_head;

	if (head == __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE))
		return false;
	*cqe = u->cqes[head & *u->cq_mask];
	__atomic_store_n(u->cq_head, head + 1, __ATOMIC_RELEASE);
	return true;
}

/* one read through io_uring: its result (bytes or -errno) */
static long uring_read1(int fd, void *buf, unsigned int len, off_t off,
			unsigned char sqe_flags)
{
	struct io_uring_cqe cqe;
	struct uring u;
	long ret;

	if (!uring_new(&u, 4))
		return -errno;
	uring_read(&u, fd, buf, len, off, sqe_flags);
	ret = uring_enter(&u, 1, 1);
	if (ret < 0)
		ret = -errno;
	else
		ret = uring_cqe(&u, &cqe) ? cqe.res : -ETIMEDOUT;
	uring_free(&u);
	return ret;
}

/* ---- the tests ---- */

/* read(2) and its relatives: one READ per call, with what it returned */
static void t_syscalls(void)
{
	struct iovec iov[2] = { { abuf, 1000 }, { abuf + 1000, 3000 } };
	int fd;

	begin();
	fd = open_f(O_RDONLY);
	WANT_OPEN(O_RDONLY);
	if (read(fd, abuf, 4096) != 4096)
		die("read");
	WANT_READ(0, 4096);
	if (pread(fd, abuf, 100, 5000) != 100)
		die("pread");
	WANT_READ(5000, 100);
	if (pread(fd, abuf, 8192, FSIZE - 100) != 100)
		die("pread across EOF");
	WANT_READ(FSIZE - 100, 100);
	if (pread(fd, abuf, 100, FSIZE) != 0)
		die("pread at EOF");
	if (lseek(fd, 100, SEEK_SET) != 100 || readv(fd, iov, 2) != 4000)
		die("readv");
	WANT_READ(100, 4000);
	if (preadv(fd, iov, 2, 9000) != 4000)
		die("preadv");
	WANT_READ(9000, 4000);
	if (preadv2(fd, iov, 2, 20000, 0) != 4000)
		die("preadv2");
	WANT_READ(20000, 4000);
	close(fd);
	check("read, pread, pread across and at EOF, readv, preadv, preadv2");
}

/* sendfile, splice and copy_file_range read through splice_read */
static void t_splice(void)
{
	loff_t off;
	loff_t out = 0;
	int pfd[2];
	int nullfd;
	int gfd;
	int fd;

	unlink(path_of("rp-copy"));
	gfd = open(path_of("rp-copy"), O_CREAT | O_WRONLY, 0644);
	nullfd = open("/dev/null", O_WRONLY);
	if (gfd < 0 || nullfd < 0 || pipe(pfd))
		die("open copy, /dev/null or pipe");
	begin();
	fd = open_f(O_RDONLY);
	WANT_OPEN(O_RDONLY);
	off = 2000;
	if (sendfile(nullfd, fd, &off, 3000) != 3000)
		die("sendfile");
	WANT_READ(2000, 3000);
	off = 7000;
	if (splice(fd, &off, pfd[1], NULL, 2000, 0) != 2000)
		die("splice");
	WANT_READ(7000, 2000);
	off = 12288;
	if (copy_file_range(fd, &off, gfd, &out, 5000, 0) != 5000)
		die("copy_file_range");
	WANT_READ(12288, 5000);
	close(fd);
	check("sendfile, splice to a pipe, copy_file_range to a file of the mount");
	close(gfd);
	close(nullfd);
	close(pfd[0]);
	close(pfd[1]);
}

/* readahead and fadvise fill the page cache: no data reaches the process */
static void t_readahead(void)
{
	int fd = open_f(O_RDONLY);

	begin();
	if (readahead(fd, 0, FSIZE) || posix_fadvise(fd, 0, FSIZE, POSIX_FADV_WILLNEED))
		die("readahead or fadvise");
	check("readahead(2) and posix_fadvise(WILLNEED) record nothing");
	close(fd);
}

/* buffered aio is synchronous, in io_submit */
static void t_aio_buffered(void)
{
	int fd;
	long r;

	begin();
	fd = open_f(O_RDONLY);
	WANT_OPEN(O_RDONLY);
	r = aio_read1(fd, abuf, 6000, 3000);
	CHECK(r == 6000, "aio read of 6000 bytes: %ld", r);
	WANT_READ(3000, 6000);
	r = aio_read1(fd, abuf, 8192, FSIZE - 1000);
	CHECK(r == 1000, "aio read across EOF: %ld", r);
	WANT_READ(FSIZE - 1000, 1000);
	close(fd);
	check("buffered aio");
}

/*
 * Buffered io_uring reads run in the submitter or, when they can't be
 * done without blocking (IOSQE_ASYNC forces it), in an iou-wrk thread
 * of its process: the record names the submitter's process either way.
 */
static void t_uring_buffered(void)
{
	int fd;
	long r;

	begin();
	fd = open_f(O_RDONLY);
	WANT_OPEN(O_RDONLY);
	r = uring_read1(fd, abuf, 4096, 8192, 0);
	CHECK(r == 4096, "io_uring read: %ld", r);
	WANT_READ(8192, 4096);
	r = uring_read1(fd, abuf, 5000, 1000, IOSQE_ASYNC);
	CHECK(r == 5000, "io_uring read in an iou-wrk thread (IOSQE_ASYNC): %ld", r);
	WANT_READ(1000, 5000);
	r = uring_read1(fd, abuf, 8192, FSIZE - 50, 0);
	CHECK(r == 50, "io_uring read across EOF: %ld", r);
	WANT_READ(FSIZE - 50, 50);
	close(fd);
	check("buffered io_uring, inline and in a worker");
}

/*
 * O_DIRECT without iomap: the open fails and nothing is recorded.
 * With it the open is recorded with O_DIRECT, aligned reads go to the
 * device, unaligned ones fall back to buffered reads, and each read
 * records the bytes it returned.
 */
static void t_direct_sync(void)
{
	int fd;

	begin();
	fd = open_f(O_RDONLY | O_DIRECT);
	if (!iomap) {
		CHECK(fd < 0 && errno == EINVAL, "O_DIRECT open fails with EINVAL (no iomap): %s",
		      fd < 0 ? strerror(errno) : "it opened");
		if (fd >= 0)
			close(fd);
		check("refused O_DIRECT open");
		return;
	}
	if (fd < 0)
		die("O_DIRECT open (the build has iomap)");
	WANT_OPEN(O_RDONLY | O_DIRECT);
	if (pread(fd, abuf, 8192, 4096) != 8192)
		die("aligned O_DIRECT pread");
	WANT_READ(4096, 8192);
	if (pread(fd, abuf, 8192, 65536 - 4096) != 4196)
		die("aligned O_DIRECT pread across EOF");
	WANT_READ(65536 - 4096, 4196);
	if (pread(fd, abuf, 1000, 100) != 1000)
		die("O_DIRECT pread at an unaligned offset");
	WANT_READ(100, 1000);
	if (pread(fd, abuf + 1, 4096, 8192) != 4096)
		die("O_DIRECT pread into an unaligned buffer");
	WANT_READ(8192, 4096);
	close(fd);
	check("O_DIRECT open, aligned pread and across EOF, unaligned offset and buffer");
}

/*
 * Direct aio and io_uring reads, from a child with uid and gid 1000:
 * on dm-delay and virtio they complete after read_iter returned, in a
 * kworker or an interrupt, where the child is not current: the
 * records must still carry its pid, uid and gid, and the bytes read.
 */
static void t_direct_async(void)
{
	pid_t pid;
	int st;

	if (!iomap) {
		printf("not applicable: direct_async: no direct I/O in this build (no iomap: direct_sync checks that O_DIRECT opens fail)\n");
		return;
	}
	begin();
	pid = fork();
	if (pid == 0) {
		int fd;

		alarm(120);
		if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
			_exit(2);
		fd = open_f(O_RDONLY | O_DIRECT);
		if (fd < 0)
			_exit(3);
		if (aio_read1(fd, abuf, 16384, 4096) != 16384)
			_exit(4);
		if (aio_read1(fd, abuf, 16384, 61440) != 4196)
			_exit(5);
		if (uring_read1(fd, abuf, 8192, 32768, 0) != 8192)
			_exit(6);
		if (uring_read1(fd, abuf, 8192, 40960, IOSQE_ASYNC) != 8192)
			_exit(7);
		if (uring_read1(fd, abuf, 8192, 61440, 0) != 4196)
			_exit(8);
		_exit(0);
	}
	st = reap(pid, 120);
	CHECK(st == 0, "uid 1000 child's direct aio and io_uring reads (status %d)", st);
	want(SCOUTFS_NOTIFY_OP_OPEN, 0, 0, OPEN_FLAGS(O_RDONLY | O_DIRECT), pid, 1000);
	want(SCOUTFS_NOTIFY_OP_READ, 4096, 16384, 0, pid, 1000);
	want(SCOUTFS_NOTIFY_OP_READ, 61440, 4196, 0, pid, 1000);
	want(SCOUTFS_NOTIFY_OP_READ, 32768, 8192, 0, pid, 1000);
	want(SCOUTFS_NOTIFY_OP_READ, 40960, 8192, 0, pid, 1000);
	want(SCOUTFS_NOTIFY_OP_READ, 61440, 4196, 0, pid, 1000);
	check("direct aio and io_uring of another user: its identity, the bytes read");
}

static void dmsetup(const char *how)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "dmsetup --noudevsync %s %s", how, dm);
	if (system(cmd))
		die(cmd);
}

/*
 * With the data device suspended a direct read can't complete: aio's
 * io_submit returns with the read queued, and nothing may be recorded
 * until the resume lets it complete.  Then one record, the submitter's,
 * with the bytes the completion reports.
 */
static void t_queued(void)
{
	struct io_uring_cqe cqe;
	struct iocb cb;
	struct iocb *cbs[1] = { &cb };
	struct io_event ev;
	aio_context_t ctx;
	struct uring u;
	long n;
	long r;
	int fd;

	if (!iomap || !dm) {
		printf("not applicable: queued: %s\n", !iomap ? "no direct I/O in this build (no iomap)" :
		       "the data device is not a dm device");
		return;
	}
	fd = open_f(O_RDONLY | O_DIRECT);
	ctx = aio_new(1);
	begin();
	dmsetup("suspend --noflush --nolockfs");
	aio_prep(&cb, fd, abuf, 8192, 61440);
	r = aio_submit(ctx, 1, cbs);
	n = drain(rfd, recs, MAXREC);
	CHECK(r == 1 && n == 0, "aio direct read queued on the suspended device: submitted %ld, %ld records", r, n);
	dmsetup("resume");
	r = aio_reap(ctx, 1, &ev);
	CHECK(r == 1 && ev.res == 4196, "it completes after the resume: %ld events, res %lld", r,
	      r == 1 ? (long long)ev.res : 0LL);
	WANT_READ(61440, 4196);
	check("queued aio read: recorded at completion");
	syscall(__NR_io_destroy, ctx);

	if (!uring_new(&u, 4))
		die("io_uring_setup");
	begin();
	dmsetup("suspend --noflush --nolockfs");
	uring_read(&u, fd, abuf, 12288, 8192, 0);
	r = uring_enter(&u, 1, 0);
	n = drain(rfd, recs, MAXREC);
	CHECK(r == 1 && n == 0 && !uring_cqe(&u, &cqe),
	      "io_uring direct read submitted to the suspended device: %ld, %ld records", r, n);
	dmsetup("resume");
	r = uring_enter(&u, 0, 1);
	CHECK(r >= 0 && uring_cqe(&u, &cqe) && cqe.res == 12288,
	      "it completes after the resume: res %d", cqe.res);
	WANT_READ(8192, 12288);
	check("queued io_uring read: recorded at completion");
	uring_free(&u);
	close(fd);
}

/*
 * More queued direct reads than the kernel keeps track of: the first
 * DIO_SLOTS are recorded when they complete, the others when they are
 * queued, with SCOUTFS_NOTIFY_READ_SUBMITTED and the length asked for
 * (up to EOF).  Every read is recorded exactly once.
 */
static void t_queued_many(void)
{
	enum { NR = DIO_SLOTS + 16 };
	static struct iocb cb[NR];
	static struct iocb *cbs[NR];
	static struct io_event evs[NR];
	static char *bufs;
	aio_context_t ctx;
	int seen[NR] = { 0 };
	long n;
	long r;
	long i;
	long bad = 0;
	long flagged = 0;
	int fd;

	if (!iomap || !dm) {
		printf("not applicable: queued_many: %s\n", !iomap ? "no direct I/O in this build (no iomap)" :
		       "the data device is not a dm device");
		return;
	}
	if (!bufs && posix_memalign((void **)&bufs, BLK, (size_t)NR * BLK))
		die("memalign");
	fd = open_f(O_RDONLY | O_DIRECT);
	ctx = aio_new(NR);
	for (i = 0; i < NR; i++) {
		/* the last one asks for 8192 past 64 KiB: 100 bytes are there */
		if (i == NR - 1)
			aio_prep(&cb[i], fd, abuf, 8192, 65536);
		else
			aio_prep(&cb[i], fd, bufs + i * BLK, BLK, (i % 16) * BLK);
		cb[i].aio_data = i;
		cbs[i] = &cb[i];
	}
	begin();
	dmsetup("suspend --noflush --nolockfs");
	r = aio_submit(ctx, NR, cbs);
	n = drain(rfd, recs, MAXREC);
	for (i = 0; i < n; i++) {
		bool last = recs[i].offset == 65536 && recs[i].len == 100;

		if (recs[i].op != SCOUTFS_NOTIFY_OP_READ ||
		    recs[i].flags != SCOUTFS_NOTIFY_READ_SUBMITTED ||
		    (recs[i].len != BLK && !last) || recs[i].pid != (uint32_t)getpid())
			bad++;
	}
	CHECK(r == NR && n == NR - DIO_SLOTS && bad == 0,
	      "%d reads queued on the suspended device: %ld submitted, %ld recorded as queued with the SUBMITTED flag (want %d), %ld wrong",
	      NR, r, n, NR - DIO_SLOTS, bad);
	flagged = n;
	dmsetup("resume");
	r = aio_reap(ctx, NR, evs);
	for (i = 0; i < r; i++)
		seen[evs[i].data] = evs[i].res == (evs[i].data == NR - 1 ? 100 : BLK);
	for (bad = 0, i = 0; i < NR; i++)
		bad += !seen[i];
	n = drain(rfd, recs, MAXREC);
	for (i = 0; i < n; i++)
		if (recs[i].op != SCOUTFS_NOTIFY_OP_READ || recs[i].flags != 0 ||
		    recs[i].len != BLK || recs[i].pid != (uint32_t)getpid())
			bad++;
	CHECK(r == NR && n == DIO_SLOTS && bad == 0,
	      "after the resume %ld completed, %ld recorded at completion (want %d), %ld wrong; %ld + %ld = every read once",
	      r, n, DIO_SLOTS, bad, flagged, n);
	syscall(__NR_io_destroy, ctx);
	close(fd);
}

/* page faults of a mapping are not recorded: the mapping is */
static void t_mmap_fault(void)
{
	volatile char *p;
	int sum = 0;
	size_t i;
	int fd;

	begin();
	fd = open_f(O_RDONLY);
	WANT_OPEN(O_RDONLY);
	p = mmap(NULL, FSIZE, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	want(SCOUTFS_NOTIFY_OP_MMAP, 0, (FSIZE + 4095) & ~4095ULL, 0, getpid(), 0);
	for (i = 0; i < FSIZE; i += 4096)
		sum += p[i];
	munmap((void *)p, FSIZE);
	close(fd);
	CHECK(sum != 0, "faulted in every page of the mapping");
	check("mmap and its page faults");
}

/*
 * execve of a file on the mount: an open for execution, the reads of
 * its headers through kernel_read() (the first 256 bytes, then the
 * program headers) and a private mapping of each loadable segment
 * that has file contents, writable where the segment is, all by the
 * execing process.  Where the exec open's flags show __FMODE_EXEC
 * (O_LARGEFILE|O_RDONLY|040) depends on the kernel; it's printed.
 */
static void t_execve(void)
{
	static char img[1 << 21];
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr *ph;
	ssize_t len;
	pid_t pid;
	int st;
	int in;
	int out;
	int i;

	in = open("/proc/self/exe", O_RDONLY);
	len = in < 0 ? -1 : read(in, img, sizeof(img));
	if (len <= (ssize_t)sizeof(*eh) || len == (ssize_t)sizeof(img))
		die("read /proc/self/exe");
	close(in);
	unlink(path_of("rp-exe"));
	out = open(path_of("rp-exe"), O_CREAT | O_WRONLY, 0755);
	if (out < 0 || write(out, img, len) != len || fsync(out))
		die("copy the program to the mount");
	close(out);
	ino = ino_of("rp-exe");
	begin();
	pid = fork();
	if (pid == 0) {
		alarm(60);
		execl(path_of("rp-exe"), "readpath-test", "--exit", (char *)NULL);
		_exit(9);
	}
	st = reap(pid, 60);
	CHECK(st == 0, "the copy on the mount ran (status %d)", st);
	want(SCOUTFS_NOTIFY_OP_OPEN, 0, 0, OPEN_FLAGS(O_RDONLY) | 040, pid, 0);
	want(SCOUTFS_NOTIFY_OP_READ, 0, 256, 0, pid, 0);
	want(SCOUTFS_NOTIFY_OP_READ, eh->e_phoff, eh->e_phnum * sizeof(*ph), 0, pid, 0);
	for (i = 0; i < eh->e_phnum; i++) {
		ph = (Elf64_Phdr *)(img + eh->e_phoff) + i;
		if (ph->p_type != PT_LOAD || ph->p_filesz == 0)
			continue;
		want(SCOUTFS_NOTIFY_OP_MMAP, ph->p_offset & ~4095ULL,
		     (ph->p_filesz + (ph->p_vaddr & 4095) + 4095) & ~4095ULL,
		     (ph->p_flags & PF_W) ? SCOUTFS_NOTIFY_MMAP_WRITE : 0, pid, 0);
	}
	check("execve: the exec open, its header reads and segment mappings");
	ino = ino_of("rp");
}

static const struct test_case tests[] = {
	{ "syscalls", t_syscalls },
	{ "splice", t_splice },
	{ "readahead", t_readahead },
	{ "aio_buffered", t_aio_buffered },
	{ "uring_buffered", t_uring_buffered },
	{ "direct_sync", t_direct_sync },
	{ "direct_async", t_direct_async },
	{ "queued", t_queued },
	{ "queued_many", t_queued_many },
	{ "mmap_fault", t_mmap_fault },
	{ "execve", t_execve },
};

/* the test file, synced so that direct reads find it on the device */
static void setup(void)
{
	FILE *f;
	char cmdline[1024] = "";
	int fd;

	dev = getenv("READPATH_DEV");
	dm = getenv("READPATH_DM");
	if (dm && !*dm)
		dm = NULL;
	f = fopen("/proc/cmdline", "r");
	if (f) {
		if (!fgets(cmdline, sizeof(cmdline), f))
			cmdline[0] = 0;
		fclose(f);
	}
	iomap = strstr(cmdline, "notify.iomap=1") != NULL;
	printf("readpath-test: data device %s%s%s, direct I/O %s\n", dev ? dev : "?",
	       dm ? " dm " : "", dm ? dm : "", iomap ? "expected (iomap)" : "not expected");
	/* unprivileged io_uring (the uid 1000 child), where a sysctl can refuse it */
	f = fopen("/proc/sys/kernel/io_uring_disabled", "w");
	if (f) {
		fputs("0\n", f);
		fclose(f);
	}
	make_file("rp", FSIZE, 0644);
	fd = open(path_of("rp"), O_RDONLY);
	if (fd < 0 || fsync(fd))
		die("fsync rp");
	close(fd);
	ino = ino_of("rp");
	if (posix_memalign((void **)&abuf, BLK, 65536 + BLK))
		die("memalign");
	rfd = open_root();
	drain(rfd, recs, MAXREC);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--exit") == 0)
		return 0;
	mnt = argc > 1 ? argv[argc - 1] : NULL;
	if (mnt && mnt[0] == '/')
		setup();
	return run_tests(argc, argv, "readpath-test", tests, sizeof(tests) / sizeof(tests[0]));
}
