/*
 * scoutfs-notify-watch: print the access records that scoutfs-notifyd
 * relays for a scoutfs mount, one line each, human readable or as JSON
 * lines.
 *
 * It asks the daemon for up to NS_MAX_RECS records per message
 * (notify-sock.c), unless --one-per-message says to take one 64 byte
 * record per message as clients that ask nothing do.  How a
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
#include "notify-sock.h"

#define SCOUTFS_SUPER_MAGIC	0x554f4353
#define DEFAULT_RUN_DIR		"/run/scoutfs"
#define PROG			"scoutfs-notify-watch"

typedef nf_rec_t rec_t;

_Static_assert(sizeof(rec_t) == 64, "notify records are 64 bytes");

/* paths through the mount, NULL without one (or with --no-paths) */
/* paths through the mount, NULL without one (or with --no-paths) */
static struct np_cache *paths;
static bool json;

/* the command line */
static struct {
	uint64_t count;
	const char *sock_path;
	const char *run_dir;
	const char *mnt_path;
	bool want_paths;
	uint32_t per_msg;
} opt = { .run_dir = DEFAULT_RUN_DIR, .want_paths = true, .per_msg = NS_MAX_RECS };

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
		"  -1, --one-per-message  don't ask the daemon for several records per\n"
		"                   message (what a client that asks nothing gets)\n"
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

/* the daemon's socket for a mount: RUN_DIR/<fsid as stat -f -c %i>/notify.sock */
static int socket_for(const char *mnt, const char *run_dir, char *buf, size_t size)
{
	struct statfs sfs;
	uint32_t w[2];

	if (statfs(mnt, &sfs)) {
		fprintf(stderr, PROG ": %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	if ((uint32_t)sfs.f_type != SCOUTFS_SUPER_MAGIC) {
		fprintf(stderr, PROG ": %s is not a scoutfs filesystem\n", mnt);
		return -1;
	}
	memcpy(w, &sfs.f_fsid, sizeof(w));
	if (snprintf(buf, size, "%s/%" PRIx64 "/notify.sock", run_dir,
		     ((uint64_t)w[0] << 32) | w[1]) >= (int)size) {
		fprintf(stderr, PROG ": socket path too long\n");
		return -1;
	}
	return 0;
}

/* the command line into opt: 0, or the exit status (-1: exit 0) */
static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "count", required_argument, NULL, 'n' },
		{ "socket", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "no-paths", no_argument, NULL, 'P' },
		{ "one-per-message", no_argument, NULL, '1' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "jn:s:r:P1h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'n':
			errno = 0;
			opt.count = strtoull(optarg, &end, 10);
			if (errno || *end || !*optarg || optarg[0] == '-' || opt.count == 0) {
				fprintf(stderr, PROG ": --count needs a positive number, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 's':
			opt.sock_path = optarg;
			break;
		case 'r':
			opt.run_dir = optarg;
			break;
		case 'P':
			opt.want_paths = false;
			break;
		case '1':
			opt.per_msg = 1;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind > 1 || (argc - optind == 0 && !opt.sock_path)) {
		fprintf(stderr, PROG ": %s\n", argc - optind > 1 ?
			"too many arguments" : "missing <mountpoint>");
		usage(stderr);
		return 2;
	}
	if (optind < argc)
		opt.mnt_path = argv[optind];
	return 0;
}

/*
 * The socket (the mount's unless --socket names one) and the path
 * cache: 0, or the exit status.
 */
static int setup(char *sock_buf, size_t size)
{
	int mnt_fd;

	if (opt.mnt_path) {
		if (!opt.sock_path) {
			if (socket_for(opt.mnt_path, opt.run_dir, sock_buf, size))
				return 1;
			opt.sock_path = sock_buf;
		}
		if (opt.want_paths) {
			mnt_fd = open(opt.mnt_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (mnt_fd >= 0)
				paths = np_cache_new(mnt_fd, opt.mnt_path);
		}
	}
	if (strlen(opt.sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, PROG ": socket path too long\n");
		return 2;
	}
	return 0;
}

/*
 * Print one record, with a line before it for a seq gap or a seq that
 * went back.  The daemon's ATTACH comes first: when the observation
 * began.  What it relayed before we connected is not ours to report
 * lost, so it is not counted and the first record after it starts our
 * seqs.  Returns true once --count records were printed.
 */
static bool take(const rec_t *rec)
{
	static bool greeted;	/* the connection's ATTACH came */
	static uint64_t seen;
	static uint64_t last;

	if (!seen && !greeted && rec->op == SCOUTFS_NOTIFY_OP_ATTACH) {
		print_rec(rec);
		greeted = true;
		return false;
	}
	if (seen && rec->seq > last + 1 && json)
		nf_json_gap(stdout, last, rec->seq, NULL);
	else if (seen && rec->seq > last + 1)
		nf_text_gap(stdout, last, rec->seq);
	else if (seen && rec->seq <= last && json)
		nf_json_reset(stdout, last, rec->seq, NULL);
	else if (seen && rec->seq <= last)
		nf_text_reset(stdout, last, rec->seq);
	print_rec(rec);
	last = rec->seq;
	return ++seen == opt.count;
}

/* receive and print until the daemon closes or --count: the exit status */
static int watch(struct ns_conn *conn)
{
	static rec_t recs[NS_RECV_RECS];
	bool eof;
	long n;
	long i;

	for (;;) {
		/* every message waiting, up to a batch, in one call */
		n = ns_recv(conn, recs, false, &eof);
		if (n < 0) {
			fflush(stdout);
			if (eof) {
				fprintf(stderr, PROG ": the daemon closed the connection\n");
				return 0;
			}
			fprintf(stderr, PROG ": %s\n", conn->err);
			return 1;
		}
		for (i = 0; i < n; i++) {
			if (take(&recs[i])) {
				fflush(stdout);
				return 0;
			}
		}
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	char sock_buf[PATH_MAX];
	struct ns_conn conn;
	int ret;

	ret = parse_args(argc, argv);
	if (!ret)
		ret = setup(sock_buf, sizeof(sock_buf));
	if (ret)
		return ret < 0 ? 0 : ret;
	if (ns_connect(&conn, opt.sock_path, opt.per_msg, PROG)) {
		fprintf(stderr, PROG ": %s%s\n", conn.err, errno == ENOENT || errno == ECONNREFUSED ?
			" (is scoutfs-notifyd running for this mount?)" : "");
		return 1;
	}
	/* output is flushed after each batch, not each line */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	signal(SIGPIPE, SIG_DFL);
	ret = watch(&conn);
	ns_close(&conn);
	np_cache_free(paths);
	return ret;
}
