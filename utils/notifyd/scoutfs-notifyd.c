/*
 * scoutfs-notifyd: relay a scoutfs mount's access notification records
 * to local clients.
 *
 * The kernel keeps a small ring of 64 byte records per mount and lets
 * one reader drain it with SCOUTFS_IOC_READ_NOTIFY.  This daemon is that
 * reader: it drains the ring and sends every record, in seq order, to
 * every client connected to /run/scoutfs/<fsid>/notify.sock, a
 * SOCK_SEQPACKET socket.  It asks the kernel for merged records (a run
 * of sequential reads of a file by one process is one record that
 * counts its calls) unless started with --no-merge.
 *
 * A client that sends nothing gets one 64 byte record per message.  A
 * client may instead send one request, for several records per message
 * (notify-sock.h); the daemon answers it, and then sends it each batch
 * it drains as messages of up to that many records.  Anything else a
 * client sends is refused with a reply that says why, and closes that
 * client; so does a hangup.
 *
 * It never blocks on a client.  Sends are non-blocking and batched
 * with sendmmsg(); a client whose socket buffer is full loses the rest
 * of the batch and sees the gap in the records' seq.
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
 * Once calls arrive faster than one per drain, the daemon asks the
 * kernel for batches (a record count and a short timer in the ioctl),
 * so a busy mount costs a couple of wakeups per batch, not per record;
 * the timer is longer while records merge well, as the ring then fills
 * slowly and each drain's records stand for many calls.
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
#include "notify-sock.h"

#define SCOUTFS_SUPER_MAGIC	0x554f4353	/* kmod/src/format.h */
#define DEFAULT_RUN_DIR		"/run/scoutfs"
#define BATCH_NR		256
/* reads of BATCH_NR to find our ATTACH behind what a dead reader left */
#define ATTACH_DRAIN_READS	16
#define WAIT_MS			500
#define MOUNT_CHECK_NS		(1000ULL * 1000 * 1000)
#define COALESCE_NS		(1000 * 1000)
/* busy: drains of at least BUSY_NR calls; then wait for a batch or BATCH_US */
#define BUSY_NR			2
#define QUIET_NR		4
#define BATCH_WAIT_NR		64
#define BATCH_US		250
/* ... or BATCH_US_MERGED when a drain's records stood for MERGED_RATIO calls each */
#define BATCH_US_MERGED		2000
#define MERGED_RATIO		4

/* exit statuses, documented in scoutfs-notifyd(8) */
#define EXIT_STOPPED		0	/* SIGTERM or SIGINT */
#define EXIT_TRANSIENT		1	/* trying again may work */
#define EXIT_USAGE		2	/* bad command line */
#define EXIT_UNSUPPORTED	3	/* can't work here: retrying won't help */
#define EXIT_UNMOUNTED		4	/* the filesystem was (or is being forcibly) unmounted */
#define MAX_CLIENTS		1024
#define CLIENT_SNDBUF		(4 * 1024 * 1024)

typedef struct scoutfs_ioctl_notify_record rec_t;

_Static_assert(sizeof(rec_t) == 64, "notify records are 64 bytes");

struct client {
	int fd;
	uint64_t id;
	uint64_t relayed;	/* records */
	uint64_t lost;		/* records */
	uint32_t max;		/* records per message, 1 until it asks */
	bool asked;
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
	uint64_t drained;	/* records */
	uint64_t calls;		/* the calls they stand for */
	uint64_t drains;	/* ioctl calls that returned records */
	uint64_t ring_lost;	/* seq gaps the daemon itself saw */
	uint64_t relayed;	/* records sent, all clients */
	uint64_t messages;	/* messages sent, all clients */
	uint64_t client_lost;	/* records clients missed */
	uint64_t clients_total;
	uint64_t last_seq;
} stats;

/* configuration */
static const char *run_dir = DEFAULT_RUN_DIR;
static const char *mnt;
static bool merge = true;

/*
 * Log lines go to stderr with sd-daemon(3) priority prefixes, which
 * journald turns into the entry's priority.
 */
#define logmsg(prio, ...) ns_log("scoutfs-notifyd", prio, __VA_ARGS__)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: scoutfs-notifyd [--run-dir DIR] [--no-merge] <mountpoint>\n"
		"\n"
		"Attach to a scoutfs mount's access notification ring and relay\n"
		"every record to the clients of DIR/<fsid>/notify.sock\n"
		"(AF_UNIX SOCK_SEQPACKET, one 64 byte record per message, or up to\n"
		"%d per message for a client that asks).\n"
		"\n"
		"  --run-dir DIR  parent of the per-filesystem socket directories\n"
		"                 (default " DEFAULT_RUN_DIR ")\n"
		"  --no-merge     every call its own record: don't ask the kernel to\n"
		"                 merge sequential reads (and identical opens)\n"
		"  -h, --help     this text\n"
		"\n"
		"SIGTERM or SIGINT: clean shutdown.  SIGUSR1: log relay counts.\n"
		"See scoutfs-notifyd(8).\n", NS_MAX_RECS);
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

/* tell systemd our state (ns_sd_notify()), saying when it could not be told */
static void sd_notify_msg(const char *msg)
{
	if (ns_sd_notify(msg))
		logmsg(LOG_WARNING, "can't notify systemd: %s", strerror(errno));
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
		 * Its first message: our ATTACH, one record, whatever the
		 * client asks for later.  An empty socket buffer takes it; if
		 * not, the client goes (quietly if it already went away, as a
		 * client that connects and closes at once).
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
		*c = (struct client){ .fd = fd, .id = next_client_id++, .max = 1 };
		stats.clients_total++;
	}
}

/*
 * A client sent a message: the one request it may send, for several
 * records per message, or anything else, which is refused.  Either way
 * it gets a reply; a refused client is closed, and nothing else changes.
 * Returns false when the client was dropped.
 */
static bool client_request(int i)
{
	unsigned char reply[NS_REPLY_LEN];
	unsigned char buf[NS_REQ_LEN + 1];
	struct client *c = &clients[i];
	char why[NS_REASON_LEN];
	char gone[NS_REASON_LEN + 16];
	uint32_t granted = 0;
	ssize_t n;

	n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return true;
		drop_client(i, strerror(errno));
		return false;
	}
	if (c->asked)
		snprintf(why, sizeof(why), "a client sends one request, as its first message, and nothing else");
	else if (ns_parse_request(buf, (size_t)n, &granted, why, sizeof(why)) == 0)
		why[0] = '\0';
	c->asked = true;
	ns_reply(reply, granted, why[0] ? why : NULL);
	if (send(c->fd, reply, sizeof(reply), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(reply) &&
	    !why[0]) {
		drop_client(i, "no room for the reply to its request");
		return false;
	}
	if (why[0]) {
		snprintf(gone, sizeof(gone), "refused: %s", why);
		drop_client(i, gone);
		return false;
	}
	c->max = granted;
	logmsg(LOG_INFO, "client %" PRIu64 " takes up to %u records per message", c->id, granted);
	return true;
}

/*
 * Clients send nothing but their one request.  A hangup ends them (a
 * client that shuts down its sending side too, whatever it sent), as
 * does anything else they send: a broken or hostile client can't cost
 * us anything, and learns why it was closed.
 */
static void check_clients(void)
{
	static struct pollfd pfds[MAX_CLIENTS];
	int i;

	if (nr_clients == 0)
		return;
	for (i = 0; i < nr_clients; i++)
		pfds[i] = (struct pollfd){ .fd = clients[i].fd, .events = POLLIN | POLLRDHUP };
	if (poll(pfds, nr_clients, 0) <= 0)
		return;
	/* from the end, as dropping moves the last client into the hole */
	for (i = nr_clients - 1; i >= 0; i--) {
		if (pfds[i].revents & (POLLHUP | POLLERR | POLLRDHUP))
			drop_client(i, "hung up");
		else if (pfds[i].revents & POLLIN)
			client_request(i);
	}
}

/*
 * The messages that carry n records at most max to a message: the
 * headers are built once for each size and shared by every client that
 * takes it.  Returns the number of messages.
 */
static int build_msgs(rec_t *recs, int n, uint32_t max, struct mmsghdr *msgs,
		      struct iovec *iovs)
{
	int nmsg = 0;
	int i;

	for (i = 0; i < n; i += max) {
		iovs[nmsg] = (struct iovec){ &recs[i], sizeof(rec_t) *
					     (n - i < (int)max ? n - i : (int)max) };
		msgs[nmsg].msg_hdr = (struct msghdr){ .msg_iov = &iovs[nmsg],
						      .msg_iovlen = 1 };
		nmsg++;
	}
	return nmsg;
}

/* records in messages [from, nmsg) */
static uint64_t recs_from(const struct mmsghdr *msgs, int from, int nmsg)
{
	uint64_t r = 0;

	for (; from < nmsg; from++)
		r += msgs[from].msg_hdr.msg_iov->iov_len / sizeof(rec_t);
	return r;
}

/*
 * Send the messages to one client with non-blocking sendmmsg() (more
 * calls only if the kernel stops early without an error); whatever
 * doesn't fit in its socket buffer is lost to it alone.  False if the
 * client was dropped.
 */
static bool send_client(int i, struct mmsghdr *msgs, int nmsg)
{
	struct client *c = &clients[i];
	uint64_t unsent;
	int sent = 0;
	int ret = 0;

	while (sent < nmsg) {
		ret = sendmmsg(c->fd, msgs + sent, nmsg - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (ret <= 0)
			break;
		sent += ret;
	}
	unsent = recs_from(msgs, sent, nmsg);
	c->relayed += recs_from(msgs, 0, nmsg) - unsent;
	stats.relayed += recs_from(msgs, 0, nmsg) - unsent;
	stats.messages += sent;
	if (unsent) {
		c->lost += unsent;
		stats.client_lost += unsent;
		if (ret < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ENOBUFS && errno != EINTR) {
			drop_client(i, strerror(errno));
			return false;
		}
	}
	return true;
}

/* send the batch to every client, in messages of the size each takes */
static void broadcast(rec_t *recs, int n)
{
	static struct mmsghdr msgs[2][BATCH_NR];
	static struct iovec iovs[2][BATCH_NR];
	int nmsg[2] = { 0, 0 };
	uint32_t built[2] = { 0, 0 };
	int i;
	int k;

	for (i = nr_clients - 1; i >= 0; i--) {
		uint32_t max = clients[i].max;

		/* one set of headers for one record a message, one for the rest */
		k = max > 1;
		if (built[k] != max) {
			nmsg[k] = build_msgs(recs, n, max, msgs[k], iovs[k]);
			built[k] = max;
		}
		send_client(i, msgs[k], nmsg[k]);
	}
}

static void log_stats(void)
{
	int i;

	logmsg(LOG_INFO, "stats: drained %" PRIu64 " last_seq %" PRIu64
	       " ring_lost %" PRIu64 " relayed %" PRIu64 " client_lost %"
	       PRIu64 " clients %d (total %" PRIu64 ") calls %" PRIu64 " drains %" PRIu64
	       " messages %" PRIu64, stats.drained, stats.last_seq, stats.ring_lost,
	       stats.relayed, stats.client_lost, nr_clients, stats.clients_total,
	       stats.calls, stats.drains, stats.messages);
	for (i = 0; i < nr_clients; i++)
		logmsg(LOG_INFO, "stats: client %" PRIu64 " records per message %u relayed %"
		       PRIu64 " lost %" PRIu64, clients[i].id, clients[i].max,
		       clients[i].relayed, clients[i].lost);
}

static long read_notify(int fd, rec_t *recs, uint64_t flags, uint64_t ms,
			uint32_t batch_nr, uint32_t batch_us)
{
	struct scoutfs_ioctl_read_notify rn = {
		.recs_ptr = (uintptr_t)recs,
		.recs_nr = BATCH_NR,
		.timeout_ms = ms,
		.flags = flags | (merge ? SCOUTFS_IOC_RN_MERGE : 0),
		.batch_nr = batch_nr,
		.batch_us = batch_us,
	};

	return ioctl(fd, SCOUTFS_IOC_READ_NOTIFY, &rn);
}

/* the calls the records stand for: 0 (not merging) counts as one */
static uint64_t calls_of(const rec_t *recs, long n)
{
	uint64_t calls = 0;
	long i;

	for (i = 0; i < n; i++)
		calls += recs[i].calls ? recs[i].calls : 1;
	return calls;
}

/* the records' seqs, and our ATTACH; returns the calls they stand for */
static uint64_t account(const rec_t *recs, long n)
{
	uint64_t calls = calls_of(recs, n);
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
	stats.calls += calls;
	stats.drains += n > 0;
	return calls;
}

/*
 * Each wakeup costs the ioctl, a sendmmsg per client and a wakeup of
 * every client: per record that is far more than the record.  When
 * calls arrive faster than we drain them one at a time (a drain found
 * more than one, in one record or several), ask the kernel to gather a
 * batch before waking us; when they trickle again (the timer brings
 * only a few), go back to relaying each at once.  Returns whether the
 * next wait asks for a batch.
 */
static bool next_busy(bool busy, long n, uint64_t calls)
{
	if (n < 0)
		return busy;
	return busy ? calls >= QUIET_NR : calls >= BUSY_NR;
}

/*
 * How long a batch may gather.  While a drain's records each stood for
 * many calls the ring fills slowly and every record a batch saves is
 * many calls relayed for one, so the batch waits longer; a ring that
 * fills still ends the wait at BATCH_WAIT_NR records.
 */
static uint32_t batch_us(long n, uint64_t calls)
{
	return n > 0 && calls >= (uint64_t)n * MERGED_RATIO ? BATCH_US_MERGED : BATCH_US;
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

/* the command line into the configuration: 0, or the exit status */
static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "no-merge", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			run_dir = optarg;
			break;
		case 'M':
			merge = false;
			break;
		case 'h':
			usage(stdout);
			return -1;
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
	return 0;
}

static void setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: the wait returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_stats;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* the first call's failure: what to log and exit with */
static int attach_failed(void)
{
	if (errno == EBUSY) {
		logmsg(LOG_ERR, "%s already has a notify reader attached (another scoutfs-notifyd on this node?)",
		       mnt);
		return EXIT_TRANSIENT;
	}
	if (errno == EPERM) {
		logmsg(LOG_ERR, "%s: attaching needs CAP_SYS_ADMIN (run as root)", mnt);
		return EXIT_UNSUPPORTED;
	}
	if (errno == ENOTTY || errno == EINVAL) {
		logmsg(LOG_ERR, "%s: the scoutfs module has no notify support (%s)",
		       mnt, strerror(errno));
		return EXIT_UNSUPPORTED;
	}
	if (errno == ENOLINK) {
		logmsg(LOG_ERR, "%s is being forcibly unmounted, not attaching", mnt);
		return EXIT_UNMOUNTED;
	}
	logmsg(LOG_ERR, "%s: READ_NOTIFY: %s", mnt, strerror(errno));
	return EXIT_TRANSIENT;
}

/*
 * Attach: the first call makes us the reader.  A module from before
 * merged records refuses the merge flag with EINVAL (before attaching
 * anything), so then we attach without it and relay every call as its
 * own record.  What a reader before us left in the ring comes first,
 * then our ATTACH: drain up to it (bounded), so that it is every
 * client's first message; no client could have had what came before.
 * If the ring was full as we attached, the kernel dropped the ATTACH
 * (its seq is a gap) and clients get none.  0, or the exit status.
 */
static int attach(int mfd, rec_t *recs)
{
	long n;
	int i;

	n = read_notify(mfd, recs, 0, 0, 0, 0);
	if (n < 0 && errno == EINVAL && merge) {
		merge = false;
		n = read_notify(mfd, recs, 0, 0, 0, 0);
		if (n >= 0)
			logmsg(LOG_WARNING, "%s: the scoutfs module has no merged records, relaying every call as its own record",
			       mnt);
	}
	if (n < 0)
		return attach_failed();
	account(recs, n);
	for (i = 0; !have_attach && n == BATCH_NR && i < ATTACH_DRAIN_READS; i++) {
		n = read_notify(mfd, recs, 0, 0, 0, 0);
		if (n < 0) {
			logmsg(LOG_ERR, "%s: READ_NOTIFY: %s", mnt, strerror(errno));
			return errno == ENOLINK ? EXIT_UNMOUNTED : EXIT_TRANSIENT;
		}
		account(recs, n);
	}
	return 0;
}

/*
 * The loop: wait for records, accept and check clients, relay.  Returns
 * the exit status.
 */
static int serve(int mfd, int lfd, const struct stat *root, rec_t *recs)
{
	uint64_t checked = mono_ns();
	uint64_t calls = 0;
	bool can_batch = true;
	bool busy = false;
	long n = 0;

	while (!stop_sig) {
		if (busy && can_batch)
			n = read_notify(mfd, recs, SCOUTFS_IOC_RN_WAIT, WAIT_MS,
					BATCH_WAIT_NR, batch_us(n, calls));
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
			return EXIT_UNMOUNTED;
		}
		if (n < 0 && errno != EINTR) {
			logmsg(LOG_ERR, "%s: READ_NOTIFY: %s", mnt, strerror(errno));
			return EXIT_TRANSIENT;
		}
		accept_clients(lfd);
		check_clients();
		calls = 0;
		if (n > 0) {
			calls = account(recs, n);
			broadcast(recs, n);
		}
		if (stats_sig) {
			stats_sig = 0;
			log_stats();
		}
		if (n <= 0 || mono_ns() - checked > MOUNT_CHECK_NS) {
			if (!mount_present(mnt, root)) {
				logmsg(LOG_ERR, "%s is no longer mounted, exiting", mnt);
				return EXIT_UNMOUNTED;
			}
			checked = mono_ns();
		}
		busy = next_busy(busy, n, calls);
		if (!can_batch)
			coalesce(n);
	}
	logmsg(LOG_INFO, "stopping on signal %d", (int)stop_sig);
	return EXIT_STOPPED;
}

int main(int argc, char **argv)
{
	static rec_t recs[BATCH_NR];
	char fsid[32];
	char dir[PATH_MAX];
	char sock[PATH_MAX + 16];
	struct statfs sfs;
	struct stat root;
	int lock_fd;
	int mfd;
	int lfd;
	int ret;

	ret = parse_args(argc, argv);
	if (ret)
		return ret < 0 ? EXIT_STOPPED : ret;

	mfd = open_mount(mnt, &sfs, &ret);
	if (mfd < 0)
		return ret;
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
	setup_signals();

	ret = attach(mfd, recs);
	if (ret)
		goto out_lock;
	ret = EXIT_TRANSIENT;
	lfd = bind_socket(sock);
	if (lfd < 0)
		goto out_lock;

	logmsg(LOG_INFO, "serving %s (fsid %s) on %s%s", mnt, fsid, sock,
	       merge ? "" : ", every call its own record");
	sd_notify_msg("READY=1");
	ret = serve(mfd, lfd, &root, recs);
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
