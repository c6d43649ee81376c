/*
 * libFuzzer target: notify-sock.c, what reads bytes the other end of
 * the daemon's socket wrote: the daemon's ns_parse_request() (a
 * client's first message), and the clients' ns_parse_reply() and
 * ns_recv() (the reply and the messages of records that
 * scoutfs-notify-watch and scoutfs-notify-forward read).  The file is
 * included whole.  What is a good request or reply is judged here from
 * the layout of docs/interface.md ("Batches"), not by the code under
 * test.  The input's first byte picks one (its low 2 bits) and the size
 * of the why buffer (the rest, 1 to 252 bytes):
 *
 * 0 request: the rest is a client's message.  ns_parse_request() takes
 *   exactly the good requests (16 bytes, "SNRQ", version 1, flags 0,
 *   max_recs at least 1, reserved 0) and grants the smaller of max_recs
 *   and 256; it refuses the rest with a reason, NUL-terminated in the
 *   why buffer, writing nothing past it nor *granted.  A grant made
 *   into a request (ns_request()) and a reply (ns_reply()) parses back
 *   to the same grant; a refusal made into a reply parses back to its
 *   reason.
 * 1 reply: the rest is a message from the daemon.  ns_parse_reply()
 *   says "no reply" (0) exactly for what is not 112 bytes starting
 *   "SNRP", grants (1) exactly a good grant (version 1, status 0,
 *   max_recs 1 to 256, reserved 0, a reason of zeros), and refuses or
 *   calls malformed (-1, with a reason) everything else; a good refusal
 *   (status 1, max_recs 0, a NUL-terminated reason) gives its reason, in
 *   printable ASCII ('?' for any other byte).  Every reason, the code's
 *   or the daemon's, is printable ASCII, so a client prints one line.
 * 2, 3 session: a client that asked for the next byte's records per
 *   message (0: asked nothing; 255: 1000) reads, with ns_recv() on a
 *   SOCK_SEQPACKET socket pair, a script of messages (next bytes, up to
 *   24: any bytes; k records; a grant; a reply with one thing wrong or a
 *   refusal), then the hangup.  What it returns is exactly the records
 *   of the messages of 1 to its limit whole 64-byte records (1 until a
 *   reply it asked for grants more, at most what it asked), in order,
 *   and then the EOF; everything else is skipped; or, from a refusal, a
 *   malformed reply, a reply it did not ask for (asked nothing, or a
 *   second one) or one granting more than asked on, an error that says
 *   so in printable ASCII (and no EOF), having returned a prefix of those
 *   records.
 *
 * With FUZZ_MUST_REFUSE=1 in the environment every input must be
 * refused (a request or reply not taken, a session ending in an
 * error): tests/fuzz/run.sh runs tests/fuzz/refused/sock/ so.
 */
#include "fuzzlib.h"
#include "notify-sock.c"

#include <signal.h>

#define WHY_ROOM	300
#define SESSION_MSGS	24
#define MODEL_RECS	(SESSION_MSGS * (NS_MAX_RECS + 1))

static bool must_refuse;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	must_refuse = getenv("FUZZ_MUST_REFUSE") && !strcmp(getenv("FUZZ_MUST_REFUSE"), "1");
	stderr = fopen("/dev/null", "w");	/* ns_recv()'s notes on skipped messages */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

enum { M_NONE, M_GRANT, M_REFUSE, M_BAD };

/* what a message from the daemon is: no reply, a good grant (*g), a good refusal, malformed */
static int model_reply(const unsigned char *m, size_t len, uint32_t *g)
{
	static const unsigned char zeros[96];
	uint16_t status;
	uint32_t max;

	if (len != 112 || memcmp(m, "SNRP", 4))
		return M_NONE;
	status = fz_get16(m + 6);
	max = fz_get32(m + 8);
	if (fz_get16(m + 4) != 1 || fz_get32(m + 12))
		return M_BAD;
	if (status == 0 && max >= 1 && max <= 256 && !memcmp(m + 16, zeros, 96)) {
		*g = max;
		return M_GRANT;
	}
	if (status == 1 && max == 0 && !m[16 + 95])
		return M_REFUSE;
	return M_BAD;
}

/* a reason that prints as one line: printable ASCII only */
static bool printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s >= 0x7f)
			return false;
	return true;
}

static void check_why(const char *why, size_t whylen)
{
	size_t i;

	FZ_ASSERT(memchr(why, 0, whylen), "a reason not NUL-terminated in its %zu bytes", whylen);
	FZ_ASSERT(whylen == 1 || why[0], "a refusal without a reason");
	FZ_ASSERT(printable(why), "a reason that is not printable ASCII");
	for (i = whylen; i < WHY_ROOM; i++)
		FZ_ASSERT((unsigned char)why[i] == 0xa5, "a byte written %zu past the reason's %zu",
			  i - whylen, whylen);
}

/* a grant and a refusal made into messages parse back as they were made */
static void round_trip(uint32_t granted, const char *why)
{
	unsigned char req[NS_REQ_LEN];
	unsigned char reply[NS_REPLY_LEN];
	char back[NS_REASON_LEN + 64];
	uint32_t g = 0;

	if (granted) {
		ns_request(req, granted);
		FZ_ASSERT(!ns_parse_request(req, sizeof(req), &g, back, sizeof(back)) && g == granted,
			  "a request for %u does not parse back", granted);
		ns_reply(reply, granted, NULL);
		FZ_ASSERT(ns_parse_reply(reply, sizeof(reply), &g, back, sizeof(back)) == 1 &&
			  g == granted, "a grant of %u does not parse back", granted);
		return;
	}
	if (!why[0])
		return;
	ns_reply(reply, 0, why);
	FZ_ASSERT(ns_parse_reply(reply, sizeof(reply), &g, back, sizeof(back)) == -1 &&
		  !strncmp(back, why, NS_REASON_LEN - 1) && strlen(back) < NS_REASON_LEN,
		  "the refusal '%s' parses back as '%s'", why, back);
}

static void fuzz_request(const uint8_t *m, size_t len, size_t whylen)
{
	uint32_t want = fz_model_grant(m, len);
	uint32_t granted = 0xdeadbeef;
	char why[WHY_ROOM];
	int r;

	memset(why, 0xa5, sizeof(why));
	r = ns_parse_request(m, len, &granted, why, whylen);
	if (want) {
		FZ_ASSERT(!must_refuse, "a request for %u taken", want);
		FZ_ASSERT(r == 0 && granted == want, "a good request (%u due) gave %d, %u", want, r,
			  granted);
		round_trip(granted, "");
		return;
	}
	FZ_ASSERT(r == -1 && granted == 0xdeadbeef, "a bad request gave %d, granted %u", r, granted);
	check_why(why, whylen);
	round_trip(0, why);
}

/* a refusal's reason as given: its printable ASCII, '?' for the rest */
static void check_reason(const char *why, const char *reason)
{
	size_t i;

	if (!reason[0])
		return;		/* some words of the client's own */
	for (i = 0; why[i]; i++)
		FZ_ASSERT(why[i] == (reason[i] >= 0x20 && reason[i] < 0x7f ? reason[i] : '?'),
			  "a refusal's reason read as '%s'", why);
}

static void fuzz_reply(const uint8_t *m, size_t len, size_t whylen)
{
	uint32_t want = 0;
	uint32_t granted = 0xdeadbeef;
	char why[WHY_ROOM];
	int kind = model_reply(m, len, &want);
	int r;

	memset(why, 0xa5, sizeof(why));
	r = ns_parse_reply(m, len, &granted, why, whylen);
	FZ_ASSERT(!must_refuse || r != 1, "a reply granting %u taken", granted);
	if (kind == M_NONE) {
		FZ_ASSERT(r == 0 && granted == 0xdeadbeef, "no reply taken for one (%d)", r);
		return;
	}
	if (kind == M_GRANT) {
		FZ_ASSERT(r == 1 && granted == want, "a good grant of %u gave %d, %u", want, r, granted);
		return;
	}
	FZ_ASSERT(r == -1 && granted == 0xdeadbeef, "a %s gave %d, granted %u",
		  kind == M_BAD ? "malformed reply" : "refusal", r, granted);
	check_why(why, whylen);
	if (kind == M_REFUSE)
		check_reason(why, (const char *)m + 16);
}

/* a session: the model of what the client must return, and the messages on their way */
struct session {
	int peer;		/* the daemon's end */
	uint32_t want;
	bool replied;
	uint32_t max;
	bool err;		/* an error from this message on */
	size_t nrecs;
	uint64_t seq;
	int msgs;
};

static ns_rec_t model_recs[MODEL_RECS];
static ns_rec_t got_recs[MODEL_RECS + NS_RECV_RECS];

/* send message m; what the client must make of it, into the model */
static void session_msg(struct session *s, const unsigned char *m, size_t len)
{
	uint32_t g = 0;
	int kind;

	if (s->msgs == SESSION_MSGS || send(s->peer, m, len, MSG_DONTWAIT) != (ssize_t)len)
		return;
	s->msgs++;
	if (s->err)
		return;
	kind = model_reply(m, len, &g);
	if (kind == M_GRANT && s->want > 1 && !s->replied && g <= s->want) {
		s->replied = true;
		s->max = g;
	} else if (kind != M_NONE) {
		s->err = true;
	} else if (len && len % 64 == 0 && len / 64 <= s->max) {
		memcpy(&model_recs[s->nrecs], m, len);
		s->nrecs += len / 64;
	}
}

/* the reply, from the documented layout: status, max_recs, and what byte v breaks */
static size_t make_reply(unsigned char *m, uint16_t status, uint32_t max, uint8_t v)
{
	static const uint16_t version = 1;

	memset(m, 0, 113);
	memcpy(m, "SNRP", 4);
	memcpy(m + 4, &version, 2);
	memcpy(m + 6, &status, 2);
	memcpy(m + 8, &max, 4);
	if (status)
		strcpy((char *)m + 16, "because");
	switch (v % 8) {
	case 0: return 112;
	case 1: m[4] = 2; break;		/* version */
	case 2: m[12 + v / 8 % 4] = 1; break;	/* reserved */
	case 3: m[16 + v / 8 % 96] = 'x'; break;	/* a reason, or its NUL */
	case 4: m[6] = 2; break;		/* status */
	case 5: return 111;
	case 6: return 113;
	default: m[8] ^= 1; break;		/* max_recs */
	}
	return 112;
}

/* k records of the next seqs */
static void records(struct session *s, unsigned k, bool attach)
{
	static ns_rec_t recs[NS_MAX_RECS + 1];
	unsigned i;

	for (i = 0; i < k; i++)
		recs[i] = (ns_rec_t){ .seq = ++s->seq, .len = 1,
				      .op = attach && !i ? SCOUTFS_NOTIFY_OP_ATTACH : SCOUTFS_NOTIFY_OP_READ };
	session_msg(s, (const unsigned char *)recs, k * sizeof(recs[0]));
}

/* the script's messages, into the socket and the model */
static void session_script(struct session *s, const uint8_t *data, size_t size)
{
	unsigned char m[NS_REPLY_LEN + 1];
	size_t i = 0;
	size_t len;
	uint8_t t;

	while (i < size && s->msgs < SESSION_MSGS) {
		t = data[i++];
		switch (t % 4) {
		case 0:		/* any bytes: two of length, then them */
			len = i + 2 <= size ? (size_t)(data[i] | data[i + 1] << 8) % 20000 : 0;
			i += i + 2 <= size ? 2 : 0;
			len = len < size - i ? len : size - i;
			session_msg(s, data + i, len);
			i += len;
			break;
		case 1:		/* 1 to 63, 256 or 257 records */
			records(s, t >> 2 < 62 ? (t >> 2) + 1 : 256 + (t >> 2) - 62, s->seq == 0);
			break;
		case 2:		/* a grant of the next byte's records, 0: 256 */
			len = make_reply(m, 0, i < size && data[i] ? data[i] : 256, 0);
			i += i < size;
			session_msg(s, m, len);
			break;
		default:	/* a reply with one thing wrong, or a refusal */
			len = make_reply(m, t >> 2 & 1, t >> 2 & 1 ? 0 : 8, t >> 3);
			session_msg(s, m, len);
			break;
		}
	}
}

/* what the client returns, to the end: the error, or the EOF */
static void session_read(struct session *s, struct ns_conn *c)
{
	size_t n = 0;
	bool eof = false;
	long r = 0;
	int calls;

	for (calls = 0; calls < 4 * SESSION_MSGS && r >= 0; calls++) {
		r = ns_recv(c, got_recs + n, true, &eof);
		if (r > 0) {
			FZ_ASSERT(n + r <= s->nrecs, "more records (%zu) than were due (%zu)", n + r,
				  s->nrecs);
			n += r;
		}
	}
	FZ_ASSERT(r < 0, "no end after %d calls", calls);
	FZ_ASSERT(!memcmp(got_recs, model_recs, n * sizeof(ns_rec_t)),
		  "records returned are not the ones sent, in order");
	if (s->err) {
		FZ_ASSERT(!eof && !strncmp(c->err, "scoutfs-notifyd refused the request: ", 37) &&
			  printable(c->err),
			  "the end of a session with a bad reply: eof %d, '%s'", eof, c->err);
		return;
	}
	FZ_ASSERT(!must_refuse, "a session without an error");
	FZ_ASSERT(eof && n == s->nrecs, "the end: eof %d, %zu records of %zu (%s)", eof, n,
		  s->nrecs, c->err);
}

static void fuzz_session(const uint8_t *data, size_t size)
{
	struct session s = { .max = 1 };
	struct ns_conn c;
	int sv[2];
	int big = 4 * 1024 * 1024;

	if (size < 1)
		return;
	s.want = data[0] == 255 ? 1000 : data[0] ? data[0] : 1;
	FZ_ASSERT(!socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair");
	if (setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)))
		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	s.peer = sv[1];
	session_script(&s, data + 1, size - 1);
	close(sv[1]);
	/* as ns_connect() leaves it, on our end; a fallback connect finds nothing */
	c = (struct ns_conn){ .fd = sv[0], .path = "/nonexistent/fuzz-sock/notify.sock",
			      .prog = "fuzz-sock", .want = s.want, .max = 1 };
	c.buf = malloc((size_t)NS_RECV_MSGS * (NS_MAX_RECS * NS_REC_LEN + 1));
	FZ_ASSERT(c.buf, "malloc");
	session_read(&s, &c);
	ns_close(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t whylen;

	if (size < 1)
		return 0;
	whylen = data[0] >> 2 ? (size_t)(data[0] >> 2) * 4 : 1;
	switch (data[0] & 3) {
	case 0:
		fuzz_request(data + 1, size - 1, whylen);
		break;
	case 1:
		fuzz_reply(data + 1, size - 1, whylen);
		break;
	default:
		fuzz_session(data + 1, size - 1);
		break;
	}
	return 0;
}
