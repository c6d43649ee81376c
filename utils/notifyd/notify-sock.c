/*
 * See notify-sock.h.  The parsers take bytes and nothing else, so that
 * they can be fed anything (a fuzzer included): every field is copied
 * out with memcpy, never read through a cast pointer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "notify-sock.h"

_Static_assert(sizeof(ns_rec_t) == NS_REC_LEN, "notify records are 64 bytes");
_Static_assert(NS_REPLY_LEN % NS_REC_LEN != 0, "a reply is never a message of records");

static const char req_magic[4] = { 'S', 'N', 'R', 'Q' };
static const char reply_magic[4] = { 'S', 'N', 'R', 'P' };

struct hdr {
	char magic[4];
	uint16_t version;
	uint16_t flags;		/* the reply's status */
	uint32_t max_recs;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hdr) == NS_REQ_LEN, "the header is 16 bytes");

void ns_request(unsigned char buf[NS_REQ_LEN], uint32_t max_recs)
{
	struct hdr h = { .version = NS_VERSION, .max_recs = max_recs };

	memcpy(h.magic, req_magic, sizeof(h.magic));
	memcpy(buf, &h, sizeof(h));
}

int ns_parse_request(const void *buf, size_t len, uint32_t *granted, char *why, size_t whylen)
{
	struct hdr h;

	if (len != NS_REQ_LEN) {
		snprintf(why, whylen, "a request is %d bytes, this message was %zu", NS_REQ_LEN, len);
		return -1;
	}
	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, req_magic, sizeof(h.magic))) {
		snprintf(why, whylen, "not a request (no \"SNRQ\" magic)");
		return -1;
	}
	if (h.version != NS_VERSION) {
		snprintf(why, whylen, "request version %u is not spoken here (version %d is)",
			 h.version, NS_VERSION);
		return -1;
	}
	if (h.flags || h.reserved) {
		snprintf(why, whylen, "the request's flags and reserved bytes must be zero");
		return -1;
	}
	if (h.max_recs == 0) {
		snprintf(why, whylen, "max_recs 0: a message holds at least one record");
		return -1;
	}
	*granted = h.max_recs < NS_MAX_RECS ? h.max_recs : NS_MAX_RECS;
	return 0;
}

void ns_reply(unsigned char buf[NS_REPLY_LEN], uint32_t max_recs, const char *reason)
{
	struct hdr h = {
		.version = NS_VERSION,
		.flags = reason ? NS_STATUS_REFUSED : NS_STATUS_GRANTED,
		.max_recs = reason ? 0 : max_recs,
	};

	memcpy(h.magic, reply_magic, sizeof(h.magic));
	memset(buf, 0, NS_REPLY_LEN);
	memcpy(buf, &h, sizeof(h));
	if (reason)
		strncpy((char *)buf + sizeof(h), reason, NS_REASON_LEN - 1);
}

/*
 * What is wrong with a reply's fields, or NULL: the layout of
 * notify-sock.h to the letter, so that a grant carries no reason and a
 * refusal grants nothing.
 */
static const char *reply_fault(const struct hdr *h, const char *reason)
{
	static const char zeros[NS_REASON_LEN];

	if (h->version != NS_VERSION)
		return "unknown version";
	if (h->reserved)
		return "reserved bytes set";
	if (h->flags == NS_STATUS_GRANTED) {
		if (h->max_recs == 0 || h->max_recs > NS_MAX_RECS)
			return "a grant out of range";
		if (memcmp(reason, zeros, NS_REASON_LEN))
			return "a grant with a reason";
		return NULL;
	}
	if (h->flags != NS_STATUS_REFUSED)
		return "unknown status";
	if (h->max_recs)
		return "a refusal that grants records";
	if (reason[NS_REASON_LEN - 1])
		return "a reason without its NUL";
	return NULL;
}

/*
 * A refusal's reason into why: the daemon's words, but only printable
 * ASCII (anything else '?'), so that a client printing it prints one
 * line of text; and never nothing.
 */
static void copy_reason(char *why, size_t whylen, const char *reason)
{
	size_t i;

	if (!reason[0]) {
		snprintf(why, whylen, "no reason given");
		return;
	}
	for (i = 0; i + 1 < whylen && reason[i]; i++)
		why[i] = reason[i] >= 0x20 && reason[i] < 0x7f ? reason[i] : '?';
	if (whylen)
		why[i] = '\0';
}

int ns_parse_reply(const void *buf, size_t len, uint32_t *granted, char *why, size_t whylen)
{
	const char *reason;
	const char *fault;
	struct hdr h;

	if (len != NS_REPLY_LEN)
		return 0;
	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, reply_magic, sizeof(h.magic)))
		return 0;
	reason = (const char *)buf + sizeof(h);
	fault = reply_fault(&h, reason);
	if (fault) {
		snprintf(why, whylen, "a malformed reply, %s (version %u, status %u, max_recs %u)",
			 fault, h.version, h.flags, h.max_recs);
		return -1;
	}
	if (h.flags == NS_STATUS_REFUSED) {
		copy_reason(why, whylen, reason);
		return -1;
	}
	*granted = h.max_recs;
	return 1;
}

static int connect_path(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* connect, and send the request when we ask for more than one record */
static int open_conn(struct ns_conn *c)
{
	unsigned char req[NS_REQ_LEN];

	c->fd = connect_path(c->path);
	if (c->fd < 0) {
		snprintf(c->err, sizeof(c->err), "connect %s: %s", c->path, strerror(errno));
		return -1;
	}
	c->max = 1;
	c->replied = false;
	c->msgs = 0;
	c->recs = 0;
	if (c->want <= 1)
		return 0;
	ns_request(req, c->want);
	/* a daemon that already closed the connection: read what it sent */
	if (send(c->fd, req, sizeof(req), MSG_NOSIGNAL) != sizeof(req) &&
	    errno != EPIPE && errno != ECONNRESET) {
		snprintf(c->err, sizeof(c->err), "sending the request to %s: %s", c->path,
			 strerror(errno));
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

int ns_connect(struct ns_conn *c, const char *path, uint32_t want, const char *prog)
{
	*c = (struct ns_conn){ .fd = -1, .path = path, .prog = prog, .want = want ? want : 1 };
	c->buf = malloc((size_t)NS_RECV_MSGS * (NS_MAX_RECS * NS_REC_LEN + 1));
	if (!c->buf) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		errno = ENOMEM;
		return -1;
	}
	if (open_conn(c)) {
		free(c->buf);
		c->buf = NULL;
		return -1;
	}
	return 0;
}

void ns_close(struct ns_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}

/*
 * recvmmsg() returned an empty entry: the daemon closed the connection,
 * or sent an empty message.  After the peer closes every further entry
 * is empty too, so it is a hangup only if nothing but empty entries
 * follow it and nothing is queued.
 */
static bool hung_up(const struct ns_conn *c, const struct mmsghdr *msgs, int from, int got)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN | POLLRDHUP };
	int queued = 0;

	for (; from < got; from++)
		if (msgs[from].msg_len)
			return false;
	if (ioctl(c->fd, FIONREAD, &queued) == 0 && queued > 0)
		return false;
	if (poll(&pfd, 1, 0) < 0)
		return true;
	return pfd.revents & (POLLRDHUP | POLLHUP | POLLERR);
}

/*
 * One message: records appended to recs at *n, the reply taken, or a
 * bad message reported.  -1 for a refusal (c->err says why).
 */
static int take_msg(struct ns_conn *c, const unsigned char *m, size_t len, ns_rec_t *recs,
		    long *n)
{
	char why[NS_REASON_LEN + 64];
	uint32_t granted;
	size_t k;
	int r;

	r = ns_parse_reply(m, len, &granted, why, sizeof(why));
	if (r > 0 && (c->want <= 1 || c->replied)) {
		snprintf(why, sizeof(why), "a reply nobody asked for");
		r = -1;
	} else if (r > 0 && granted > c->want) {
		snprintf(why, sizeof(why), "a reply granting %u records a message, %u asked for",
			 granted, c->want);
		r = -1;
	}
	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "scoutfs-notifyd refused the request: %s", why);
		return -1;
	}
	if (r > 0) {
		c->replied = true;
		c->max = granted;
		return 0;
	}
	if (len == 0 || len % NS_REC_LEN || len / NS_REC_LEN > c->max) {
		fprintf(stderr, "%s: ignoring a %zu byte message (a message holds %s%u record%s of %d bytes)\n",
			c->prog, len, c->max > 1 ? "1 to " : "", c->max, c->max > 1 ? "s" : "",
			NS_REC_LEN);
		return 0;
	}
	for (k = 0; k < len / NS_REC_LEN; k++) {
		memcpy(&recs[*n], m + k * NS_REC_LEN, NS_REC_LEN);
		/* after falling back, the new connection's ATTACH came already */
		if (c->recs == 0 && recs[*n].op == SCOUTFS_NOTIFY_OP_ATTACH) {
			if (c->fell_back && recs[*n].seq == c->attach_seq) {
				c->recs++;
				continue;
			}
			c->attach_seq = recs[*n].seq;
		}
		c->recs++;
		(*n)++;
	}
	c->msgs++;
	return 0;
}

/*
 * The daemon closed the connection.  If it never answered our request
 * and sent no more than its ATTACH, it is one from before requests,
 * which closes a client that sends anything: connect again without.
 */
static bool fall_back(struct ns_conn *c)
{
	if (c->want <= 1 || c->replied || c->fell_back || c->recs > 1)
		return false;
	close(c->fd);
	c->fell_back = true;
	c->want = 1;
	if (open_conn(c))
		return false;
	fprintf(stderr, "%s: %s closed the connection without answering the request for "
		"batches (an older scoutfs-notifyd?): connected again for one record per message\n",
		c->prog, c->path);
	return true;
}

long ns_recv(struct ns_conn *c, ns_rec_t *recs, bool nonblocking, bool *eof)
{
	const size_t msg_size = NS_MAX_RECS * NS_REC_LEN + 1;
	struct mmsghdr msgs[NS_RECV_MSGS];
	struct iovec iovs[NS_RECV_MSGS];
	long n = 0;
	int got;
	int i;

	*eof = false;
	for (i = 0; i < NS_RECV_MSGS; i++) {
		iovs[i] = (struct iovec){ c->buf + i * msg_size, msg_size };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iovs[i], .msg_iovlen = 1 };
	}
	/*
	 * A daemon that closes the connection with our request unread
	 * (one from before requests, or one that refused a client that
	 * sent more) makes the first receive fail with ECONNRESET; what it
	 * sent before is still queued behind that, and then the EOF.
	 */
	do
		got = recvmmsg(c->fd, msgs, NS_RECV_MSGS,
			       (nonblocking ? MSG_DONTWAIT : MSG_WAITFORONE) | MSG_TRUNC, NULL);
	while (got < 0 && errno == ECONNRESET);
	if (got < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		snprintf(c->err, sizeof(c->err), "recv: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < got; i++) {
		if (msgs[i].msg_len == 0 && hung_up(c, msgs, i + 1, got)) {
			if (n == 0 && fall_back(c))
				return 0;
			/* what came before the hangup first, the EOF next time */
			if (n > 0)
				return n;
			*eof = true;
			return -1;
		}
		if (take_msg(c, iovs[i].iov_base, msgs[i].msg_len, recs, &n))
			return -1;
	}
	return n;
}

/*
 * Without linking libsystemd: one datagram to $NOTIFY_SOCKET (a path,
 * or @ for an abstract socket).  No socket, or none we can make, is
 * not an error: systemd is not listening.
 */
int ns_sd_notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int ret = 0;
	int err;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sun.sun_path))
		return 0;
	if (path[0] != '/' && path[0] != '@')
		return 0;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = 0;
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
		ret = -1;
	err = errno;
	close(fd);
	errno = err;
	return ret;
}

void ns_log(const char *prog, int prio, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "<%d>%s: ", prio, prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
