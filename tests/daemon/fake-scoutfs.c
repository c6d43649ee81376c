/*
 * A stand-in for a scoutfs mount's notify ioctl, preloaded into
 * scoutfs-notifyd and scoutfs-notify-watch for the tier 1 tests, so the
 * production code carries no test switches.
 *
 * The directory $FAKE_SCOUTFS_MNT (a tmpfs mount in the tests) is made
 * to look like a scoutfs mount: statfs reports scoutfs's magic and the
 * fsid $FAKE_SCOUTFS_FSID (hex, as `stat -f -c %i` prints it), and the
 * READ_NOTIFY and INO_PATH ioctls on files of that filesystem are
 * served here.  Everything else goes to libc.
 *
 * The ring behaves like the kernel's: 1024 records, seq from 1, the
 * newest dropped (and its seq consumed) when full, RN_WAIT waits up to
 * the timeout and returns EINTR on a signal.  Records come from
 * commands, one per datagram, sent to the unix socket
 * $FAKE_SCOUTFS_CTL that the first READ_NOTIFY binds:
 *
 *	emit N		N READ records (ino 1000 + seq % 7, offset seq)
 *	stream N	N records made as fast as the reader drains them,
 *			never dropped (a producer that keeps up)
 *	drop N		N records generated and dropped (a seq gap)
 *	op N		one record with op N (an op this version doesn't know)
 *	open INO	one OPEN record of inode INO
 *	read INO	one READ record of inode INO
 *	seqread INO N	N sequential 4096 byte READ calls of inode INO by
 *			one process, from offset 0: merged like the kernel
 *			merges them for a reader that asks (SCOUTFS_IOC_RN_MERGE,
 *			into the newest record not yet drained, if nothing
 *			was recorded or dropped after it), else N records
 *	shutdown	a forced unmount begins: nothing more is stored, a
 *			waiting reader is woken, gets what is left, then
 *			ENOLINK, and nobody can attach again
 *
 * Batched reads (batch_nr, batch_us) are checked as the kernel checks
 * them and logged to $FAKE_SCOUTFS_EVENTS as "batch=NR/US" (once per
 * distinct value in a row); the stand-in doesn't wait for the batch.
 * $FAKE_SCOUTFS_NO_BATCH makes them EINVAL, as a module from before
 * batched reads does.  Unknown flags are EINVAL.  Whether a call asks
 * for merged records is logged as "merge=0" or "merge=1" (once per
 * distinct value in a row); $FAKE_SCOUTFS_NO_MERGE makes the merge flag
 * EINVAL, as a module from before merged records does.  Records stored
 * for a merging reader count 1 call, the others 0.
 *
 * INO_PATH gives "dir/file-<ino>", or, when the directory
 * $FAKE_SCOUTFS_NAMES holds a file named <ino>, that file's bytes as
 * they are: names no shell could type, to test what the tools print.
 *
 * STATFS_MORE gives the fsid and the rid $FAKE_SCOUTFS_RID (hex, default
 * 0123456789abcdef): the mount's identity for scoutfs-notify-forward.
 *
 * $FAKE_SCOUTFS_ATTACH_ERRNO makes the attaching call fail with that
 * errno (e.g. 16 for EBUSY).  Like the kernel, a READ_NOTIFY on another
 * file while a reader is attached fails with EBUSY, and closing the
 * reader's file detaches it.  Attach and detach are appended as lines
 * "attach" and "detach" to the file $FAKE_SCOUTFS_EVENTS, if set, so a
 * test can tell that the reader's file was closed.
 *
 * $FAKE_SCOUTFS_LEFT=N puts N records in the ring ahead of the ATTACH,
 * as a reader that died without draining them leaves them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <linux/types.h>

#ifndef U64_MAX
#define U64_MAX UINT64_MAX
#endif
#include "ioctl.h"

#define RING_NR 1024

typedef struct scoutfs_ioctl_notify_record rec_t;

static rec_t ring[RING_NR];
static uint64_t head;
static uint64_t tail;
static uint64_t next_seq = 1;
static uint64_t stream_left;
static int ctl_fd = -1;
static bool attached;
static bool merging;
static bool shutdown_begun;
static int reader_fd = -1;

static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_fstatfs)(int, struct statfs *);
static int (*real_statfs)(const char *, struct statfs *);
static int (*real_close)(int);

static void init(void)
{
	if (!real_ioctl) {
		real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
		real_fstatfs = (int (*)(int, struct statfs *))dlsym(RTLD_NEXT, "fstatfs");
		real_statfs = (int (*)(const char *, struct statfs *))dlsym(RTLD_NEXT, "statfs");
		real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	}
}

/* is st on the fake mount's filesystem? */
static bool on_fake(const struct stat *st)
{
	const char *mnt = getenv("FAKE_SCOUTFS_MNT");
	struct stat m;

	return mnt && stat(mnt, &m) == 0 && m.st_dev == st->st_dev;
}

static void fake_sfs(struct statfs *sfs)
{
	const char *s = getenv("FAKE_SCOUTFS_FSID");
	uint64_t fsid = s ? strtoull(s, NULL, 16) : 0x1234abcd5678ef90ULL;
	uint32_t w[2] = { (uint32_t)(fsid >> 32), (uint32_t)fsid };

	sfs->f_type = 0x554f4353;
	memcpy(&sfs->f_fsid, w, sizeof(w));
}

int fstatfs(int fd, struct statfs *sfs)
{
	struct stat st;
	int ret;

	init();
	ret = real_fstatfs(fd, sfs);
	if (ret == 0 && fstat(fd, &st) == 0 && on_fake(&st))
		fake_sfs(sfs);
	return ret;
}

int statfs(const char *path, struct statfs *sfs)
{
	struct stat st;
	int ret;

	init();
	ret = real_statfs(path, sfs);
	if (ret == 0 && stat(path, &st) == 0 && on_fake(&st))
		fake_sfs(sfs);
	return ret;
}

/* the same structure on 64bit: programs built with LFS call these */
int fstatfs64(int fd, struct statfs64 *sfs)
{
	return fstatfs(fd, (struct statfs *)sfs);
}

int statfs64(const char *path, struct statfs64 *sfs)
{
	return statfs(path, (struct statfs *)sfs);
}

static void event(const char *what)
{
	const char *path = getenv("FAKE_SCOUTFS_EVENTS");
	int fd;

	if (!path)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, what, strlen(what)) < 0 || write(fd, "\n", 1) < 0)
		fprintf(stderr, "fake-scoutfs: can't log to %s\n", path);
	real_close(fd);
}

int close(int fd)
{
	init();
	if (attached && fd == reader_fd) {
		attached = false;
		merging = false;
		reader_fd = -1;
		head = tail = 0;
		event("detach");
	}
	return real_close(fd);
}

static void store(void)
{
	rec_t *r;
	struct timespec ts;
	uint64_t seq;

	if (shutdown_begun)
		return;
	seq = next_seq++;

	if (head - tail >= RING_NR)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	r = &ring[head++ % RING_NR];
	*r = (rec_t){
		.seq = seq,
		.ino = 1000 + seq % 7,
		.time_ns = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec,
		.offset = seq,
		.len = 4096,
		.op = SCOUTFS_NOTIFY_OP_READ,
		.pid = 4242,
		.uid = 1000,
		.gid = 1000,
		.calls = merging ? 1 : 0,
	};
}

/* one READ call of ino at off, merged into the newest record if it continues it */
static void read_call(uint64_t ino, uint64_t off)
{
	rec_t *last = head > tail ? &ring[(head - 1) % RING_NR] : NULL;

	if (merging && last && last->seq + 1 == next_seq && last->calls &&
	    last->op == SCOUTFS_NOTIFY_OP_READ && last->ino == ino && last->pid == 4242 &&
	    last->offset + last->len == off) {
		last->len += 4096;
		last->calls++;
		return;
	}
	store();
	if (head > tail && ring[(head - 1) % RING_NR].seq == next_seq - 1) {
		ring[(head - 1) % RING_NR].ino = ino;
		ring[(head - 1) % RING_NR].offset = off;
	}
}

static void bind_ctl(void)
{
	const char *path = getenv("FAKE_SCOUTFS_CTL");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (ctl_fd >= 0 || !path || strlen(path) >= sizeof(sun.sun_path))
		return;
	strcpy(sun.sun_path, path);
	unlink(path);
	ctl_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl_fd >= 0 && bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun))) {
		close(ctl_fd);
		ctl_fd = -1;
	}
}

static void read_ctl(void)
{
	char buf[128];
	unsigned long long n;
	ssize_t len;

	unsigned long long ino;

	while (ctl_fd >= 0 && (len = recv(ctl_fd, buf, sizeof(buf) - 1, 0)) > 0) {
		buf[len] = 0;
		if (sscanf(buf, "seqread %llu %llu", &ino, &n) == 2) {
			for (unsigned long long k = 0; k < n; k++)
				read_call(ino, k * 4096);
		} else if (sscanf(buf, "emit %llu", &n) == 1) {
			while (n--)
				store();
		} else if (sscanf(buf, "drop %llu", &n) == 1) {
			next_seq += n;
		} else if (sscanf(buf, "stream %llu", &n) == 1) {
			stream_left += n;
		} else if (sscanf(buf, "op %llu", &n) == 1) {
			store();
			if (head > tail)
				ring[(head - 1) % RING_NR].op = (uint32_t)n;
		} else if (!strncmp(buf, "shutdown", 8)) {
			shutdown_begun = true;
		} else if (sscanf(buf, "open %llu", &n) == 1 ||
			   sscanf(buf, "read %llu", &n) == 1) {
			store();
			if (head > tail) {
				ring[(head - 1) % RING_NR].ino = n;
				ring[(head - 1) % RING_NR].op = buf[0] == 'o' ?
					SCOUTFS_NOTIFY_OP_OPEN : SCOUTFS_NOTIFY_OP_READ;
			}
		}
	}
}

static int read_notify(int fd, struct scoutfs_ioctl_read_notify *rn)
{
	rec_t *out = (rec_t *)(uintptr_t)rn->recs_ptr;
	struct pollfd pfd;
	const char *e;
	uint64_t n = 0;
	int ms;

	if (attached && fd != reader_fd) {
		errno = EBUSY;
		return -1;
	}
	if ((rn->flags & ~(SCOUTFS_IOC_RN_WAIT | SCOUTFS_IOC_RN_MERGE)) ||
	    ((rn->flags & SCOUTFS_IOC_RN_MERGE) && getenv("FAKE_SCOUTFS_NO_MERGE"))) {
		errno = EINVAL;
		return -1;
	}
	if ((rn->batch_nr || rn->batch_us) &&
	    (getenv("FAKE_SCOUTFS_NO_BATCH") || !(rn->flags & SCOUTFS_IOC_RN_WAIT) ||
	     rn->batch_nr > rn->recs_nr || rn->batch_us > 1000000 ||
	     (rn->batch_us && rn->batch_nr <= 1))) {
		errno = EINVAL;
		return -1;
	}
	if (rn->batch_nr > 1) {
		static char last[32];
		char what[32];

		snprintf(what, sizeof(what), "batch=%u/%u", rn->batch_nr, rn->batch_us);
		if (strcmp(what, last)) {
			event(what);
			strcpy(last, what);
		}
	}
	if (!attached && shutdown_begun) {
		errno = ENOLINK;
		return -1;
	}
	{
		static int last_merge = -1;
		char what[16];

		merging = rn->flags & SCOUTFS_IOC_RN_MERGE;
		if (last_merge != merging) {
			snprintf(what, sizeof(what), "merge=%d", merging);
			event(what);
			last_merge = merging;
		}
	}
	if (!attached) {
		e = getenv("FAKE_SCOUTFS_ATTACH_ERRNO");
		if (e && atoi(e)) {
			errno = atoi(e);
			return -1;
		}
		attached = true;
		reader_fd = fd;
		event("attach");
		bind_ctl();
		e = getenv("FAKE_SCOUTFS_LEFT");
		for (int i = 0; e && i < atoi(e); i++)
			store();	/* a dead reader's leftovers */
		store();	/* the ATTACH record */
		ring[(head - 1) % RING_NR].op = SCOUTFS_NOTIFY_OP_ATTACH;
		ring[(head - 1) % RING_NR].ino = 0;
	}
	if (rn->recs_nr == 0) {
		errno = EINVAL;
		return -1;
	}
	read_ctl();
	if (head == tail && !stream_left && !shutdown_begun && (rn->flags & SCOUTFS_IOC_RN_WAIT)) {
		ms = rn->timeout_ms ? (int)rn->timeout_ms : -1;
		pfd = (struct pollfd){ .fd = ctl_fd, .events = POLLIN };
		if (poll(&pfd, ctl_fd >= 0 ? 1 : 0, ms) < 0)
			return -1;	/* EINTR, like the kernel's wait */
		read_ctl();
	}
	while (stream_left && !shutdown_begun && head - tail < RING_NR) {
		store();
		stream_left--;
	}
	if (shutdown_begun && head == tail) {
		errno = ENOLINK;
		return -1;
	}
	while (n < rn->recs_nr && tail < head)
		out[n++] = ring[tail++ % RING_NR];
	return (int)n;
}

static int ino_path(struct scoutfs_ioctl_ino_path *args)
{
	struct scoutfs_ioctl_ino_path_result *res =
		(void *)(uintptr_t)args->result_ptr;
	size_t room = args->result_bytes - sizeof(*res);
	const char *names = getenv("FAKE_SCOUTFS_NAMES");
	char name[4096];
	ssize_t got = -1;
	int len;
	int fd;

	if (names) {
		snprintf(name, sizeof(name), "%s/%llu", names, (unsigned long long)args->ino);
		fd = open(name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			got = read(fd, res->path, room - 1);
			real_close(fd);
		}
	}
	if (got >= 0) {
		res->path[got] = 0;
		len = (int)got;
	} else {
		len = snprintf((char *)res->path, room, "dir/file-%llu",
			       (unsigned long long)args->ino);
	}
	res->path_bytes = len + 1;
	res->dir_ino = 1;
	res->dir_pos = 0;
	return 0;
}

static int statfs_more(struct scoutfs_ioctl_statfs_more *sfm)
{
	const char *f = getenv("FAKE_SCOUTFS_FSID");
	const char *r = getenv("FAKE_SCOUTFS_RID");

	memset(sfm, 0, sizeof(*sfm));
	sfm->fsid = f ? strtoull(f, NULL, 16) : 0x1234abcd5678ef90ULL;
	sfm->rid = r ? strtoull(r, NULL, 16) : 0x0123456789abcdefULL;
	return 0;
}

int ioctl(int fd, unsigned long req, ...)
{
	struct stat st;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	init();

	if ((req == SCOUTFS_IOC_READ_NOTIFY || req == SCOUTFS_IOC_INO_PATH ||
	     req == SCOUTFS_IOC_STATFS_MORE) &&
	    fstat(fd, &st) == 0 && on_fake(&st)) {
		if (req == SCOUTFS_IOC_READ_NOTIFY)
			return read_notify(fd, arg);
		if (req == SCOUTFS_IOC_STATFS_MORE)
			return statfs_more(arg);
		return ino_path(arg);
	}
	return real_ioctl(fd, req, arg);
}
