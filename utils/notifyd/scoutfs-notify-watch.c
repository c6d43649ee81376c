/*
 * scoutfs-notify-watch: print the access records that scoutfs-notifyd
 * relays for a scoutfs mount, one line each, human readable or as JSON
 * lines.
 *
 * Every message on the daemon's socket is one 64 byte record.  How a
 * record is written, and how file names are escaped so that no name
 * can forge a line or break a JSON parser, is notify-format.c's.  A jump
 * in seq means records were lost (ring full, no reader, or this client
 * too slow) and gets its own line, so a consumer never has to guess.
 * Paths are resolved with scoutfs's SCOUTFS_IOC_INO_PATH where that
 * works (it needs root), through notify-path.c's cache, so reads don't
 * cost an ioctl each; opens refresh it.  Messages are received in batches
 * with recvmmsg() and the output is written once per batch, so a busy
 * stream costs a couple of system calls per batch, not per record.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
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
#include <sys/types.h>
#include <sys/un.h>
#include <linux/types.h>

#include "notify-format.h"
#include "notify-path.h"

#define SCOUTFS_SUPER_MAGIC	0x554f4353
#define DEFAULT_RUN_DIR		"/run/scoutfs"
#define RECV_BATCH		64

typedef nf_rec_t rec_t;

_Static_assert(sizeof(rec_t) == 64, "notify records are 64 bytes");

/* paths through the mount, NULL without one (or with --no-paths) */
static struct np_cache *paths;
static bool json;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: scoutfs-notify-watch [options] <mountpoint>\n"
		"       scoutfs-notify-watch [options] --socket PATH [<mountpoint>]\n"
		"\n"
		"Print the access records scoutfs-notifyd relays, one per line.\n"
		"\n"
		"  -j, --json       JSON lines instead of text\n"
		"  -n, --count N    exit after N records (not counting the ATTACH record\n"
		"                   every connection starts with)\n"
		"  -s, --socket P   the daemon's socket (default\n"
		"                   RUN_DIR/<fsid of mountpoint>/notify.sock)\n"
		"  -r, --run-dir D  default " DEFAULT_RUN_DIR "\n"
		"  -P, --no-paths   don't resolve inode numbers to paths\n"
		"  -h, --help       this text\n"
		"\n"
		"See scoutfs-notify-watch(8).\n");
}

static void print_rec(const rec_t *r)
{
	const char *path = NULL;
	size_t len = 0;

	if (paths && (r->op == SCOUTFS_NOTIFY_OP_OPEN || r->op == SCOUTFS_NOTIFY_OP_READ ||
		      r->op == SCOUTFS_NOTIFY_OP_MMAP))
		path = np_path(paths, r->ino, r->op == SCOUTFS_NOTIFY_OP_OPEN, &len);
	if (json)
		nf_json_record(stdout, r, path, len, NULL);
	else
		nf_text_record(stdout, r, path, len);
}

/*
 * recv() returned 0: the daemon closed the connection, or sent an
 * empty message.  A close is only seen once every queued message was
 * received, and then the peer has hung up.
 */
static bool closed(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLRDHUP };
	int queued = 0;

	if (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0)
		return false;
	if (poll(&pfd, 1, 0) < 0)
		return true;
	return pfd.revents & (POLLRDHUP | POLLHUP | POLLERR);
}

/*
 * After the peer closes, every further receive of a batch returns 0,
 * so an empty entry is only a hangup if nothing but empty entries
 * follow it; otherwise it was an empty message.
 */
static bool later_data(const struct mmsghdr *msgs, int from, int got)
{
	for (; from < got; from++)
		if (msgs[from].msg_len)
			return true;
	return false;
}

/* the daemon's socket for a mount: RUN_DIR/<fsid as stat -f -c %i>/notify.sock */
static int socket_for(const char *mnt, const char *run_dir, char *buf, size_t size)
{
	struct statfs sfs;
	uint32_t w[2];

	if (statfs(mnt, &sfs)) {
		fprintf(stderr, "scoutfs-notify-watch: %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	if ((uint32_t)sfs.f_type != SCOUTFS_SUPER_MAGIC) {
		fprintf(stderr, "scoutfs-notify-watch: %s is not a scoutfs filesystem\n", mnt);
		return -1;
	}
	memcpy(w, &sfs.f_fsid, sizeof(w));
	if (snprintf(buf, size, "%s/%" PRIx64 "/notify.sock", run_dir,
		     ((uint64_t)w[0] << 32) | w[1]) >= (int)size) {
		fprintf(stderr, "scoutfs-notify-watch: socket path too long\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "count", required_argument, NULL, 'n' },
		{ "socket", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "no-paths", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *run_dir = DEFAULT_RUN_DIR;
	const char *sock_path = NULL;
	char sock_buf[PATH_MAX];
	static unsigned char bufs[RECV_BATCH][sizeof(rec_t) + 1];
	static struct mmsghdr msgs[RECV_BATCH];
	static struct iovec iovs[RECV_BATCH];
	int got;
	int i;
	uint64_t count = 0;
	uint64_t seen = 0;
	bool greeted = false;	/* the connection's ATTACH came */
	uint64_t last = 0;
	bool want_paths = true;
	const char *mnt_path;
	int mnt_fd;
	char *end;
	rec_t rec;
	ssize_t n;
	int fd;
	int c;

	while ((c = getopt_long(argc, argv, "jn:s:r:Ph", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'n':
			errno = 0;
			count = strtoull(optarg, &end, 10);
			if (errno || *end || !*optarg || optarg[0] == '-' || count == 0) {
				fprintf(stderr, "scoutfs-notify-watch: --count needs a positive number, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 's':
			sock_path = optarg;
			break;
		case 'r':
			run_dir = optarg;
			break;
		case 'P':
			want_paths = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind > 1 || (argc - optind == 0 && !sock_path)) {
		fprintf(stderr, "scoutfs-notify-watch: %s\n", argc - optind > 1 ?
			"too many arguments" : "missing <mountpoint>");
		usage(stderr);
		return 2;
	}
	if (optind < argc) {
		mnt_path = argv[optind];
		if (!sock_path) {
			if (socket_for(mnt_path, run_dir, sock_buf, sizeof(sock_buf)))
				return 1;
			sock_path = sock_buf;
		}
		if (want_paths) {
			mnt_fd = open(mnt_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (mnt_fd >= 0)
				paths = np_cache_new(mnt_fd, mnt_path);
		}
	}
	if (strlen(sock_path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "scoutfs-notify-watch: socket path too long\n");
		return 2;
	}
	strcpy(sun.sun_path, sock_path);

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		fprintf(stderr, "scoutfs-notify-watch: connect %s: %s%s\n", sock_path,
			strerror(errno), errno == ENOENT || errno == ECONNREFUSED ?
			" (is scoutfs-notifyd running for this mount?)" : "");
		return 1;
	}
	/* output is flushed after each batch, not each line */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	signal(SIGPIPE, SIG_DFL);
	for (i = 0; i < RECV_BATCH; i++) {
		iovs[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iovs[i], .msg_iovlen = 1 };
	}

	for (;;) {
		/* every message waiting, up to a batch, in one call */
		got = recvmmsg(fd, msgs, RECV_BATCH, MSG_WAITFORONE | MSG_TRUNC, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "scoutfs-notify-watch: recv: %s\n", strerror(errno));
			return 1;
		}
		for (i = 0; i < got; i++) {
			n = msgs[i].msg_len;
			if (n == 0 && !later_data(msgs, i + 1, got) && closed(fd)) {
				fflush(stdout);
				fprintf(stderr, "scoutfs-notify-watch: the daemon closed the connection\n");
				return 0;
			}
			if (n != sizeof(rec_t)) {
				fflush(stdout);
				fprintf(stderr, "scoutfs-notify-watch: ignoring a %zd byte message (records are %zu bytes)\n",
					n, sizeof(rec_t));
				continue;
			}
			memcpy(&rec, bufs[i], sizeof(rec));
			/*
			 * The daemon's ATTACH comes first: when the observation
			 * began.  What it relayed before we connected is not
			 * ours to report lost, so it is not counted and the
			 * first record after it starts our seqs.
			 */
			if (!seen && !greeted && rec.op == SCOUTFS_NOTIFY_OP_ATTACH) {
				print_rec(&rec);
				greeted = true;
				continue;
			}
			if (seen && rec.seq > last + 1 && json)
				nf_json_gap(stdout, last, rec.seq, NULL);
			else if (seen && rec.seq > last + 1)
				nf_text_gap(stdout, last, rec.seq);
			else if (seen && rec.seq <= last && json)
				nf_json_reset(stdout, last, rec.seq, NULL);
			else if (seen && rec.seq <= last)
				nf_text_reset(stdout, last, rec.seq);
			print_rec(&rec);
			last = rec.seq;
			if (++seen == count) {
				fflush(stdout);
				return 0;
			}
		}
		fflush(stdout);
	}
}
