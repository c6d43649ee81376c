/*
 * scoutfs-notifyd: relay a scoutfs mount's access notification records
 * to local clients.
 *
 * The kernel keeps a small ring of 64 byte records per mount and lets
 * one reader drain it with SCOUTFS_IOC_READ_NOTIFY.  This daemon is that
 * reader: it drains the ring and sends every record, one 64 byte
 * SOCK_SEQPACKET message each and in seq order, to every client
 * connected to /run/scoutfs/<fsid>/notify.sock.
 *
 * It never blocks on a client.  Sends are non-blocking and batched
 * with sendmmsg(); a client whose socket buffer is full loses the rest
 * of the batch and sees the gap in the records' seq.  Clients send
 * nothing: data (see client_msg()) or a hangup from a client closes
 * that client.
 *
 * A client's first message is the ATTACH record of this daemon's
 * attachment (drained before the socket existed, so no client could
 * have it): when the observation it is served from began.  The records
 * after it are those drained once it connected, so a seq after the
 * ATTACH's next one means records relayed before it connected.
 *
 * One thread does everything, in a loop: wait in the ioctl for records
 * (which wakes as soon as one is stored, or after a timeout), accept
 * pending clients and drop misbehaving ones, then send the batch.  So a
 * client whose connect() returned before a record was drained receives
 * it.  Signals interrupt the wait: SIGTERM and SIGINT shut down,
 * SIGUSR1 logs the counts.
 *
 * While records trickle in, each is relayed as soon as it is stored.
 * Once they arrive faster than one per drain, the daemon asks the
 * kernel for batches (a record count and a short timer in the ioctl),
 * so a busy mount costs a couple of wakeups per batch, not per record.
 *
 * The exit status says whether trying again could help (see
 * scoutfs-notifyd(8)); the systemd unit restarts only EXIT_TRANSIENT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/un.h>
#include <linux/types.h>

#ifndef U64_MAX
#define U64_MAX UINT64_MAX
#endif
#include "ioctl.h"

#define SCOUTFS_SUPER_MAGIC	0x554f4353	/* kmod/src/format.h */
#define DEFAULT_RUN_DIR		"/run/scoutfs"
#define BATCH_NR		256
/* reads of BATCH_NR to find our ATTACH behind what a dead reader left */
#define ATTACH_DRAIN_READS	16
#define WAIT_MS			500
#define MOUNT_CHECK_NS		(1000ULL * 1000 * 1000)
#define COALESCE_NS		(1000 * 1000)
/* busy: drains of at least BUSY_NR; then wait for a batch or BATCH_US */
#define BUSY_NR			2
#define QUIET_NR		4
#define BATCH_WAIT_NR		64
#define BATCH_US		250

/* exit statuses, documented in scoutfs-notifyd(8) */
#define EXIT_STOPPED		0	/* SIGTERM or SIGINT */
#define EXIT_TRANSIENT		1	/* trying again may work */
#define EXIT_USAGE		2	/* bad command line */
#define EXIT_UNSUPPORTED	3	/* can't work here: retrying won't help */
#define EXIT_UNMOUNTED		4	/* the filesystem was (or is being forcibly) unmounted */
#define MAX_CLIENTS		1024
#define CLIENT_SNDBUF		(4 * 1024 * 1024)
#define CLIENT_MSG_MAX		256	/* what is read of a client's message */

typedef struct scoutfs_ioctl_notify_record rec_t;

_Static_assert(sizeof(rec_t) == 64, "notify records are 64 bytes");

struct client {
	int fd;
	uint64_t id;
	uint64_t relayed;
	uint64_t lost;
};

static struct client clients[MAX_CLIENTS];
static int nr_clients;

/* our attachment's ATTACH record: every client's first message */
static rec_t attach_rec;
static bool have_attach;
static uint64_t next_client_id = 1;

static volatile sig_atomic_t stop_sig;
static volatile sig_atomic_t stats_sig;

static struct {
	uint64_t drained;
	uint64_t ring_lost;	/* seq gaps the daemon itself saw */
	uint64_t relayed;	/* record messages sent, all clients */
	uint64_t client_lost;	/* record messages clients missed */
	uint64_t clients_total;
	uint64_t last_seq;
} stats;

/*
 * Log lines go to stderr with sd-daemon(3) priority prefixes, which
 * journald turns into the entry's priority.
 */
static void logmsg(int prio, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "<%d>scoutfs-notifyd: ", prio);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define LOG_ERR		3
#define LOG_WARNING	4
#define LOG_INFO	6

static void usage(FILE *f)
{
	fprintf(f,
		"usage: scoutfs-notifyd [--run-dir DIR] <mountpoint>\n"
		"\n"
		"Attach to a scoutfs mount's access notification ring and relay\n"
		"every record to the clients of DIR/<fsid>/notify.sock\n"
		"(AF_UNIX SOCK_SEQPACKET, one 64 byte record per message).\n"
		"\n"
		"  --run-dir DIR  parent of the per-filesystem socket directories\n"
		"                 (default " DEFAULT_RUN_DIR ")\n"
		"  -h, --help     this text\n"
		"\n"
		"SIGTERM or SIGINT: clean shutdown.  SIGUSR1: log relay counts.\n"
		"See scoutfs-notifyd(8).\n");
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void on_stop(int sig)
{
	stop_sig = sig;
}

static void on_stats(int sig)
{
	(void)sig;
	stats_sig = 1;
}

/*
 * Tell systemd (Type=notify) about our state, if it is listening,
 * without linking libsystemd: one datagram to $NOTIFY_SOCKET.
 */
static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sun.sun_path))
		return;
	if (path[0] != '/' && path[0] != '@')
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = 0;
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
		   (struct sockaddr *)&sun, len) < 0)
		logmsg(LOG_WARNING, "can't notify systemd: %s", strerror(errno));
	close(fd);
}

/*
 * The fsid as `stat -f -c %i` prints it: coreutils puts f_fsid's first
 * word in the high 32 bits and prints the result in hex, unpadded.
 */
static void fsid_str(const struct statfs *sfs, char *buf, size_t size)
{
	uint32_t w[2];
	uint64_t fsid;

	memcpy(w, &sfs->f_fsid, sizeof(w));
	fsid = ((uint64_t)w[0] << 32) | w[1];
	snprintf(buf, size, "%" PRIx64, fsid);
}

/*
 * Open the mount's root, refusing anything that isn't a scoutfs mount
 * root.  *status is what to exit with when it fails: a mount that is
 * being forcibly unmounted answers ENOLINK, anything else here will
 * not change by trying again.
 */
static int open_mount(const char *mnt, struct statfs *sfs, int *status)
{
	struct stat st;
	struct stat up;
	int fd;
	int ufd;

	*status = EXIT_UNSUPPORTED;
	fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		logmsg(LOG_ERR, "%s: %s", mnt, strerror(errno));
		if (errno == ENOLINK)
			*status = EXIT_UNMOUNTED;
		return -1;
	}
	if (fstatfs(fd, sfs) || fstat(fd, &st)) {
		logmsg(LOG_ERR, "%s: %s%s", mnt, strerror(errno), errno == ENOLINK ?
		       " (the filesystem is being forcibly unmounted)" : "");
		if (errno == ENOLINK)
			*status = EXIT_UNMOUNTED;
		goto fail;
	}
	if ((uint32_t)sfs->f_type != SCOUTFS_SUPER_MAGIC) {
		logmsg(LOG_ERR, "%s is not a scoutfs filesystem (type 0x%lx)",
		       mnt, (unsigned long)sfs->f_type);
		goto fail;
	}
	ufd = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ufd < 0 || fstat(ufd, &up)) {
		logmsg(LOG_ERR, "%s/..: %s", mnt, strerror(errno));
		if (ufd >= 0)
			close(ufd);
		goto fail;
	}
	close(ufd);
	if (up.st_dev == st.st_dev && up.st_ino != st.st_ino) {
		logmsg(LOG_ERR, "%s is inside a scoutfs filesystem, not its mount point",
		       mnt);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* the mount point still leads to the filesystem we attached to */
static bool mount_present(const char *mnt, const struct stat *root)
{
	struct stat st;

	if (stat(mnt, &st))
		return false;
	return st.st_dev == root->st_dev && st.st_ino == root->st_ino;
}

/*
 * Make a directory on the socket's path, or check the one that is
 * there: ours (or root's, for the shared parent) and not writable by
 * anyone else, so that nobody could have prepared it for us.  Only our
 * own per-filesystem directory has its mode fixed.
 */
static int make_dir(const char *path, mode_t mode, bool fix)
{
	struct stat st;

	if (mkdir(path, mode) && errno != EEXIST) {
		logmsg(LOG_ERR, "mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	if (lstat(path, &st)) {
		logmsg(LOG_ERR, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		logmsg(LOG_ERR, "%s is not a directory", path);
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		logmsg(LOG_ERR, "%s is owned by uid %u, refusing to use it", path,
		       (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & 07777) == mode)
		return 0;
	if (fix && st.st_uid == geteuid()) {
		if (chmod(path, mode)) {
			logmsg(LOG_ERR, "chmod %s: %s", path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		logmsg(LOG_ERR, "%s is writable by others (mode %04o), refusing to use it",
		       path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/*
 * Take the per-filesystem lock: held for our whole life, it is what
 * makes a second daemon for the same filesystem refuse to start, and
 * what tells us that a socket we find is stale.
 */
static int take_lock(const char *dir, const char *mnt)
{
	char path[PATH_MAX + 16];
	char pid[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/notifyd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		logmsg(LOG_ERR, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno == EWOULDBLOCK) {
			n = pread(fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, "\n")] = 0;
			logmsg(LOG_ERR, "another scoutfs-notifyd (pid %s) already serves %s",
			       pid[0] ? pid : "?", mnt);
		} else {
			logmsg(LOG_ERR, "flock %s: %s", path, strerror(errno));
		}
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, n, 0) != n)
		logmsg(LOG_WARNING, "can't write pid to %s", path);
	return fd;
}

static int bind_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		logmsg(LOG_ERR, "socket path %s is too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);

	/* we hold the lock, so a socket left here is a crashed daemon's */
	if (unlink(path) == 0)
		logmsg(LOG_INFO, "replaced stale socket %s", path);
	else if (errno != ENOENT) {
		logmsg(LOG_ERR, "unlink %s: %s", path, strerror(errno));
		return -1;
	}

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		logmsg(LOG_ERR, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		umask(old);
		logmsg(LOG_ERR, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(path, 0600) || listen(fd, 128)) {
		logmsg(LOG_ERR, "%s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

static void drop_client(int i, const char *why)
{
	struct client *c = &clients[i];

	logmsg(LOG_INFO, "client %" PRIu64 " gone (%s): relayed %" PRIu64
	       ", lost %" PRIu64, c->id, why, c->relayed, c->lost);
	close(c->fd);
	clients[i] = clients[--nr_clients];
}

static void accept_clients(int lfd)
{
	int bufsz = CLIENT_SNDBUF;
	struct client *c;
	int fd;

	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				logmsg(LOG_WARNING, "accept: %s", strerror(errno));
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			return;
		}
		if (nr_clients == MAX_CLIENTS) {
			logmsg(LOG_WARNING, "refusing a client: %d connected",
			       MAX_CLIENTS);
			close(fd);
			continue;
		}
		/* room for bursts; the unprivileged option caps at wmem_max */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)))
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
		/*
		 * Its first message: our ATTACH.  An empty socket buffer
		 * takes it; if not, the client goes (quietly if it already
		 * went away, as a client that connects and closes at once).
		 */
		if (have_attach && send(fd, &attach_rec, sizeof(attach_rec), MSG_DONTWAIT) !=
		    sizeof(attach_rec)) {
			if (errno == EPIPE || errno == ECONNRESET)
				logmsg(LOG_INFO, "a client went away before its ATTACH record was sent");
			else
				logmsg(LOG_WARNING, "sending a client the ATTACH record: %s",
				       strerror(errno));
			close(fd);
			continue;
		}
		c = &clients[nr_clients++];
		*c = (struct client){ .fd = fd, .id = next_client_id++ };
		stats.clients_total++;
	}
}

/*
 * What a client sent, one message of len bytes (of which buf holds the
 * first CLIENT_MSG_MAX): why the client must go, or NULL to keep it.
 * Clients only receive, so any message ends the client: that keeps a
 * broken or hostile client from costing us anything.  Every byte a
 * client sends is judged here and nowhere else.
 */
static const char *client_msg(struct client *c, const unsigned char *buf, size_t len)
{
	(void)c;
	(void)buf;
	(void)len;
	return "sent data";
}

/* a client is readable: its message, or its hangup; why it must go, or NULL */
static const char *client_readable(struct client *c)
{
	unsigned char buf[CLIENT_MSG_MAX];
	ssize_t n;

	n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return NULL;
	if (n <= 0)
		return "hung up";
	return client_msg(c, buf, (size_t)n);
}

/* drop the clients that sent something they may not, or hung up */
static void check_clients(void)
{
	static struct pollfd pfds[MAX_CLIENTS];
	const char *why;
	int i;

	if (nr_clients == 0)
		return;
	for (i = 0; i < nr_clients; i++)
		pfds[i] = (struct pollfd){ .fd = clients[i].fd, .events = POLLIN | POLLRDHUP };
	if (poll(pfds, nr_clients, 0) <= 0)
		return;
	/* from the end, as dropping moves the last client into the hole */
	for (i = nr_clients - 1; i >= 0; i--) {
		why = NULL;
		if (pfds[i].revents & POLLIN)
			why = client_readable(&clients[i]);
		else if (pfds[i].revents & (POLLHUP | POLLERR | POLLRDHUP))
			why = "hung up";
		if (why)
			drop_client(i, why);
	}
}

/*
 * Send the batch to every client.  The message headers are the same
 * for every client; each gets one non-blocking sendmmsg() (more only
 * if the kernel stops early without an error), and whatever doesn't fit
 * in its socket buffer is lost to it alone.
 */
static void broadcast(rec_t *recs, int n)
{
	static struct mmsghdr msgs[BATCH_NR];
	static struct iovec iovs[BATCH_NR];
	int i;
	int sent;
	int ret;

	for (i = 0; i < n; i++) {
		iovs[i] = (struct iovec){ &recs[i], sizeof(rec_t) };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iovs[i],
						   .msg_iovlen = 1 };
	}

	for (i = nr_clients - 1; i >= 0; i--) {
		struct client *c = &clients[i];

		sent = 0;
		while (sent < n) {
			ret = sendmmsg(c->fd, msgs + sent, n - sent,
				       MSG_DONTWAIT | MSG_NOSIGNAL);
			if (ret > 0) {
				sent += ret;
				continue;
			}
			break;
		}
		c->relayed += sent;
		stats.relayed += sent;
		if (sent < n) {
			c->lost += n - sent;
			stats.client_lost += n - sent;
			if (ret < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != ENOBUFS && errno != EINTR)
				drop_client(i, strerror(errno));
		}
	}
}

static void log_stats(void)
{
	int i;

	logmsg(LOG_INFO, "stats: drained %" PRIu64 " last_seq %" PRIu64
	       " ring_lost %" PRIu64 " relayed %" PRIu64 " client_lost %"
	       PRIu64 " clients %d (total %" PRIu64 ")", stats.drained,
	       stats.last_seq, stats.ring_lost, stats.relayed,
	       stats.client_lost, nr_clients, stats.clients_total);
	for (i = 0; i < nr_clients; i++)
		logmsg(LOG_INFO, "stats: client %" PRIu64 " relayed %" PRIu64
		       " lost %" PRIu64, clients[i].id, clients[i].relayed,
		       clients[i].lost);
}

static long read_notify(int fd, rec_t *recs, uint64_t flags, uint64_t ms,
			uint32_t batch_nr, uint32_t batch_us)
{
	struct scoutfs_ioctl_read_notify rn = {
		.recs_ptr = (uintptr_t)recs,
		.recs_nr = BATCH_NR,
		.timeout_ms = ms,
		.flags = flags,
		.batch_nr = batch_nr,
		.batch_us = batch_us,
	};

	return ioctl(fd, SCOUTFS_IOC_READ_NOTIFY, &rn);
}

static void account(const rec_t *recs, long n)
{
	long i;

	for (i = 0; i < n; i++) {
		if (recs[i].op == SCOUTFS_NOTIFY_OP_ATTACH) {
			attach_rec = recs[i];
			have_attach = true;
		}
		if (stats.last_seq && recs[i].seq > stats.last_seq + 1)
			stats.ring_lost += recs[i].seq - stats.last_seq - 1;
		stats.last_seq = recs[i].seq;
	}
	stats.drained += n;
}

/*
 * Each wakeup costs the ioctl, a sendmmsg per client and a wakeup of
 * every client: per record that is far more than the record.  When
 * records arrive faster than we drain them one at a time (a drain
 * found more than one), ask the kernel to gather a batch before waking
 * us, for at most BATCH_US; when they trickle again (the timer brings
 * only a few), go back to relaying each at once.  Returns whether the
 * next wait asks for a batch.
 */
static bool next_busy(bool busy, long n)
{
	if (n < 0)
		return busy;
	return busy ? n >= QUIET_NR : n >= BUSY_NR;
}

/*
 * A module from before batched reads refuses the batch fields with
 * EINVAL.  With one of those we let a millisecond's worth of records
 * gather in the ring after a small batch instead, as the daemon did
 * before: the ring holds 1024 records, so that only loses records if
 * they arrive at over a million a second.
 */
static void coalesce(long n)
{
	struct timespec ts = { 0, COALESCE_NS };

	if (n > 0 && n < BATCH_NR / 2)
		nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static rec_t recs[BATCH_NR];
	const char *run_dir = DEFAULT_RUN_DIR;
	char fsid[32];
	char dir[PATH_MAX];
	char sock[PATH_MAX + 16];
	struct sigaction sa;
	struct statfs sfs;
	struct stat root;
	uint64_t checked;
	bool can_batch = true;
	bool busy = false;
	const char *mnt;
	int lock_fd;
	int mfd;
	int lfd;
	int ret = EXIT_TRANSIENT;
	long n;
	int c;
	int i;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			run_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_STOPPED;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "scoutfs-notifyd: %s\n",
			optind == argc ? "missing <mountpoint>" : "too many arguments");
		usage(stderr);
		return EXIT_USAGE;
	}
	mnt = argv[optind];
	if (run_dir[0] != '/') {
		fprintf(stderr, "scoutfs-notifyd: --run-dir must be an absolute path\n");
		return EXIT_USAGE;
	}

	mfd = open_mount(mnt, &sfs, &ret);
	if (mfd < 0)
		return ret;
	ret = EXIT_TRANSIENT;
	if (fstat(mfd, &root)) {
		logmsg(LOG_ERR, "%s: %s", mnt, strerror(errno));
		return EXIT_TRANSIENT;
	}
	fsid_str(&sfs, fsid, sizeof(fsid));
	if (snprintf(dir, sizeof(dir), "%s/%s", run_dir, fsid) >= (int)sizeof(dir)) {
		logmsg(LOG_ERR, "--run-dir is too long");
		return EXIT_USAGE;
	}

	/* a run dir we may not use won't become usable by retrying */
	snprintf(sock, sizeof(sock), "%s/notify.sock", dir);
	if (make_dir(run_dir, 0755, false) || make_dir(dir, 0700, true))
		return EXIT_UNSUPPORTED;
	lock_fd = take_lock(dir, mnt);
	if (lock_fd < 0)
		return EXIT_TRANSIENT;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: the wait returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_stats;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	/* attach: the first call makes us the reader */
	n = read_notify(mfd, recs, 0, 0, 0, 0);
	if (n < 0) {
		if (errno == EBUSY) {
			logmsg(LOG_ERR, "%s already has a notify reader attached (another scoutfs-notifyd on this node?)",
			       mnt);
		} else if (errno == EPERM) {
			logmsg(LOG_ERR, "%s: attaching needs CAP_SYS_ADMIN (run as root)",
			       mnt);
			ret = EXIT_UNSUPPORTED;
		} else if (errno == ENOTTY || errno == EINVAL) {
			logmsg(LOG_ERR, "%s: the scoutfs module has no notify support (%s)",
			       mnt, strerror(errno));
			ret = EXIT_UNSUPPORTED;
		} else if (errno == ENOLINK) {
			logmsg(LOG_ERR, "%s is being forcibly unmounted, not attaching", mnt);
			ret = EXIT_UNMOUNTED;
		} else {
			logmsg(LOG_ERR, "%s: READ_NOTIFY: %s", mnt, strerror(errno));
		}
		goto out_lock;
	}
	account(recs, n);
	/*
	 * What a reader before us left in the ring comes first, then our
	 * ATTACH: drain up to it (bounded), so that it is every client's
	 * first message; no client could have had what came before.  If
	 * the ring was full as we attached, the kernel dropped the ATTACH
	 * (its seq is a gap) and clients get none.
	 */
	for (i = 0; !have_attach && n == BATCH_NR && i < ATTACH_DRAIN_READS; i++) {
		n = read_notify(mfd, recs, 0, 0, 0, 0);
		if (n < 0) {
			if (errno == ENOLINK)
				ret = EXIT_UNMOUNTED;
			logmsg(LOG_ERR, "%s: READ_NOTIFY: %s", mnt, strerror(errno));
			goto out_lock;
		}
		account(recs, n);
	}

	lfd = bind_socket(sock);
	if (lfd < 0)
		goto out_lock;

	logmsg(LOG_INFO, "serving %s (fsid %s) on %s", mnt, fsid, sock);
	sd_notify_msg("READY=1");
	checked = mono_ns();

	while (!stop_sig) {
		if (busy && can_batch)
			n = read_notify(mfd, recs, SCOUTFS_IOC_RN_WAIT, WAIT_MS,
					BATCH_WAIT_NR, BATCH_US);
		else
			n = read_notify(mfd, recs, SCOUTFS_IOC_RN_WAIT, WAIT_MS, 0, 0);
		if (n < 0 && errno == EINVAL && busy && can_batch) {
			logmsg(LOG_WARNING, "%s: the scoutfs module has no batched reads, coalescing instead",
			       mnt);
			can_batch = false;
			continue;
		}
		if (n < 0 && errno == ENOLINK) {
			logmsg(LOG_WARNING, "%s is being forcibly unmounted: detaching so that the unmount can finish",
			       mnt);
			ret = EXIT_UNMOUNTED;
			goto out_sock;
		}
		if (n < 0 && errno != EINTR) {
			logmsg(LOG_ERR, "%s: READ_NOTIFY: %s", mnt, strerror(errno));
			goto out_sock;
		}
		accept_clients(lfd);
		check_clients();
		if (n > 0) {
			account(recs, n);
			broadcast(recs, n);
		}
		if (stats_sig) {
			stats_sig = 0;
			log_stats();
		}
		if (n <= 0 || mono_ns() - checked > MOUNT_CHECK_NS) {
			if (!mount_present(mnt, &root)) {
				logmsg(LOG_ERR, "%s is no longer mounted, exiting", mnt);
				ret = EXIT_UNMOUNTED;
				goto out_sock;
			}
			checked = mono_ns();
		}
		busy = next_busy(busy, n);
		if (!can_batch)
			coalesce(n);
	}
	logmsg(LOG_INFO, "stopping on signal %d", (int)stop_sig);
	ret = EXIT_STOPPED;
out_sock:
	sd_notify_msg("STOPPING=1");
	log_stats();
	while (nr_clients)
		drop_client(nr_clients - 1, "shutdown");
	unlink(sock);
	close(lfd);
out_lock:
	close(mfd);	/* detaches the reader */
	close(lock_fd);
	return ret;
}
