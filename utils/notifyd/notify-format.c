/*
 * The text and JSON forms of access records, shared by every tool that
 * writes them (see notify-format.h for the encoding rules).  File names
 * are whatever users made them: a name may hold a newline followed by
 * a made-up record, tabs, quotes, bytes that are not UTF-8 or
 * characters that look like '/'.  Nothing here trusts them: the text
 * form escapes every byte that could end a line, separate a field or
 * change how the line reads, and the JSON form is valid UTF-8 with the
 * exact bytes kept in base64 when they are not.
 *
 * A busy stream formats tens of thousands of records a second in every
 * client, so a record is built in a buffer, with integers and the time
 * formatted by hand, and written with one fwrite(): stdio's formatting,
 * a call per field or per byte, was most of what a client spent on a
 * record.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify-format.h"

/* what a record's line holds besides its path: fields, names, time */
#define LINE_FIXED	1024
/* an origin's strings kept (json_open()) when each is shorter */
#define NF_ORIGIN_MAX	80
/* a path's bytes as JSON take at most 6 each (\u00XX), and base64 */
#define PATH_ROOM(len)	((len) * 6 + (len) / 3 * 4 + 8)
#define STACK_LINE	(LINE_FIXED + PATH_ROOM(4096))

/*
 * The buffer a line is built in.  Everything that is put in it was
 * sized for beforehand (LINE_FIXED and PATH_ROOM), so a full buffer is
 * a bug: it is caught, and the line is cut there rather than overrun.
 */
struct buf {
	char *p;
	size_t len;
	size_t cap;
};

static void put(struct buf *b, const void *s, size_t n)
{
	if (n > b->cap - b->len)
		n = b->cap - b->len;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void putch(struct buf *b, char c)
{
	if (b->len < b->cap)
		b->p[b->len++] = c;
}

#define PUTS(b, lit) put(b, lit, sizeof(lit) - 1)

/* decimal, two digits a division */
static void put_u64(struct buf *b, uint64_t v)
{
	static const char pairs[] =
		"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
		"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
		"8081828384858687888990919293949596979899";
	char d[20];
	int n = 0;

	while (v >= 100) {
		n += 2;
		memcpy(d + sizeof(d) - n, pairs + (v % 100) * 2, 2);
		v /= 100;
	}
	if (v >= 10) {
		n += 2;
		memcpy(d + sizeof(d) - n, pairs + v * 2, 2);
	} else {
		d[sizeof(d) - 1 - n++] = (char)('0' + v);
	}
	put(b, d + sizeof(d) - n, n);
}

/* printf's %#o: "0" for zero, else a leading 0 */
static void put_oct(struct buf *b, uint32_t v)
{
	char d[12];
	int n = 0;

	do {
		d[sizeof(d) - 1 - n++] = (char)('0' + (v & 7));
		v >>= 3;
	} while (v);
	if (d[sizeof(d) - n] != '0')
		d[sizeof(d) - 1 - n++] = '0';
	put(b, d + sizeof(d) - n, n);
}

static void put_hex2(struct buf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	putch(b, hex[c >> 4]);
	putch(b, hex[c & 15]);
}

/* the line is written once, whole */
static void flush_buf(FILE *f, const struct buf *b)
{
	fwrite(b->p, 1, b->len, f);
}

/* a buffer for a line with a path of path_len bytes */
static bool buf_init(struct buf *b, char *stack, size_t stack_size, size_t path_len)
{
	size_t need = LINE_FIXED + PATH_ROOM(path_len);

	b->len = 0;
	b->cap = stack_size;
	b->p = stack;
	if (need <= stack_size)
		return true;
	b->p = malloc(need);
	b->cap = need;
	return b->p != NULL;
}

static void buf_done(struct buf *b, const char *stack)
{
	if (b->p != stack)
		free(b->p);
}

const char *nf_op_name(uint32_t op)
{
	switch (op) {
	case SCOUTFS_NOTIFY_OP_OPEN:
		return "OPEN";
	case SCOUTFS_NOTIFY_OP_READ:
		return "READ";
	case SCOUTFS_NOTIFY_OP_ATTACH:
		return "ATTACH";
	case SCOUTFS_NOTIFY_OP_MMAP:
		return "MMAP";
	}
	return NULL;
}

/*
 * The time as RFC 3339 in UTC with nanoseconds into b.  Records come
 * in time order, so the date and time of day of the last second are
 * kept, per thread, and only the nanoseconds formatted each time.
 */
static void put_time(struct buf *b, uint64_t ns)
{
	static _Thread_local time_t last_secs = -1;
	static _Thread_local char last[32];
	static _Thread_local size_t last_len;
	time_t secs = ns / 1000000000ULL;
	uint32_t frac = ns % 1000000000ULL;
	char d[9];
	struct tm tm;
	int i;

	if (secs != last_secs) {
		gmtime_r(&secs, &tm);
		last_len = strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
		last_secs = secs;
	}
	put(b, last, last_len);
	for (i = 8; i >= 0; i--) {
		d[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	putch(b, '.');
	put(b, d, sizeof(d));
	putch(b, 'Z');
}

void nf_time(uint64_t ns, char *buf, size_t size)
{
	char line[64];
	struct buf b = { line, 0, sizeof(line) };

	put_time(&b, ns);
	snprintf(buf, size, "%.*s", (int)b.len, b.p);
}

/*
 * The length of the valid UTF-8 sequence at s (at most len bytes), 0
 * if s doesn't start one: no overlong forms, no surrogates, nothing
 * above U+10FFFF.  *cp gets the code point.  The one test of UTF-8 of
 * the encoders and of notify-json.c's parser, so that what one takes
 * the other writes.
 */
size_t nf_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0];
	size_t n;
	size_t i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		c &= 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* characters that are valid but change how a line reads, unseen */
static bool invisible(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c ||
	       (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff;
}

/* a byte the text form writes as it is, the common case */
static bool text_plain(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '\\';
}

/* the text form of len bytes of s into b: at most 4 bytes per byte */
static void text_str(struct buf *b, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;
	size_t n;
	size_t i;

	while (len > 0) {
		for (n = 0; n < len && text_plain(s[n]); n++)
			;
		put(b, s, n);
		s += n;
		len -= n;
		if (!len)
			break;
		n = nf_utf8_seq(s, len, &cp);
		if (n == 1 && cp == '\\') {
			PUTS(b, "\\\\");
		} else if (n > 1 && !invisible(cp)) {
			put(b, s, n);
		} else {
			/* one byte of garbage, or every byte of what is hidden */
			if (n == 0)
				n = 1;
			for (i = 0; i < n; i++) {
				PUTS(b, "\\x");
				put_hex2(b, s[i]);
			}
		}
		s += n;
		len -= n;
	}
}

void nf_text_str(FILE *f, const char *str, size_t len)
{
	char stack[STACK_LINE];
	struct buf b;

	if (!buf_init(&b, stack, sizeof(stack), len))
		return;
	text_str(&b, str, len);
	flush_buf(f, &b);
	buf_done(&b, stack);
}

static void base64(struct buf *b, const unsigned char *s, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t v;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		putch(b, tab[v >> 18]);
		putch(b, tab[(v >> 12) & 63]);
		putch(b, tab[(v >> 6) & 63]);
		putch(b, tab[v & 63]);
	}
	if (len - i == 1) {
		v = (uint32_t)s[i] << 16;
		putch(b, tab[v >> 18]);
		putch(b, tab[(v >> 12) & 63]);
		PUTS(b, "==");
	} else if (len - i == 2) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		putch(b, tab[v >> 18]);
		putch(b, tab[(v >> 12) & 63]);
		putch(b, tab[(v >> 6) & 63]);
		putch(b, '=');
	}
}

/* a byte JSON takes as it is: printable ASCII but for quote and backslash */
static bool json_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* a JSON string literal of s; returns false if s was not valid UTF-8 */
static bool json_str(struct buf *b, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	bool valid = true;
	uint32_t cp;
	size_t n;

	putch(b, '"');
	while (len > 0) {
		for (n = 0; n < len && json_plain(s[n]); n++)
			;
		put(b, s, n);
		s += n;
		len -= n;
		if (!len)
			break;
		n = nf_utf8_seq(s, len, &cp);
		if (n == 0) {
			/* U+FFFD REPLACEMENT CHARACTER for each invalid byte */
			PUTS(b, "\xef\xbf\xbd");
			valid = false;
			n = 1;
		} else if (cp == '"' || cp == '\\') {
			putch(b, '\\');
			putch(b, (char)cp);
		} else if (cp < 0x20 || cp == 0x7f || invisible(cp)) {
			PUTS(b, "\\u");
			put_hex2(b, (unsigned char)(cp >> 8));
			put_hex2(b, (unsigned char)cp);
		} else {
			put(b, s, n);
		}
		s += n;
		len -= n;
	}
	putch(b, '"');
	return valid;
}

/* "name": "s", and "name_b64": "..." when s is not valid UTF-8 */
static bool json_member(struct buf *b, const char *name, const char *s, size_t len)
{
	bool valid;

	putch(b, '"');
	put(b, name, strlen(name));
	PUTS(b, "\": ");
	valid = json_str(b, s, len);
	if (!valid) {
		PUTS(b, ", \"");
		put(b, name, strlen(name));
		PUTS(b, "_b64\": \"");
		base64(b, (const unsigned char *)s, len);
		putch(b, '"');
	}
	return valid;
}

bool nf_json_member(FILE *f, const char *name, const char *s, size_t len)
{
	char stack[STACK_LINE];
	struct buf b;
	bool valid;

	if (!buf_init(&b, stack, sizeof(stack), len + strlen(name)))
		return false;
	valid = json_member(&b, name, s, len);
	flush_buf(f, &b);
	buf_done(&b, stack);
	return valid;
}

/* ", "key": N */
static void json_num(struct buf *b, const char *key, size_t klen, uint64_t v)
{
	put(b, key, klen);
	put_u64(b, v);
}

#define JSON_NUM(b, key, v) json_num(b, ", \"" key "\": ", sizeof(", \"" key "\": ") - 1, v)

/* {"schema": N, and where the record came from, if known */
static void json_open_new(struct buf *b, const struct nf_origin *o)
{
	PUTS(b, "{\"schema\": ");
	put_u64(b, NF_JSON_SCHEMA);
	if (!o)
		return;
	if (o->fsid) {
		PUTS(b, ", ");
		json_member(b, "fsid", o->fsid, strlen(o->fsid));
	}
	if (o->node) {
		PUTS(b, ", ");
		json_member(b, "node", o->node, strlen(o->node));
	}
	if (o->rid) {
		PUTS(b, ", ");
		json_member(b, "rid", o->rid, strlen(o->rid));
	}
}

static size_t origin_len(const struct nf_origin *o)
{
	return o ? (o->fsid ? strlen(o->fsid) : 0) + (o->node ? strlen(o->node) : 0) +
		   (o->rid ? strlen(o->rid) : 0) : 0;
}

static bool same_str(const char *a, const char *b)
{
	return a == b ? true : a && b && !strcmp(a, b);
}

/*
 * json_open_new()'s bytes, which a tool that publishes records writes
 * for the same origin every time: kept, per thread, for the last origin
 * (its strings compared, as a tool may change them in place), when they
 * fit.
 */
static void json_open(struct buf *b, const struct nf_origin *o)
{
	static _Thread_local char kept[512];
	static _Thread_local size_t kept_len;
	static _Thread_local char fsid[NF_ORIGIN_MAX], node[NF_ORIGIN_MAX], rid[NF_ORIGIN_MAX];
	static _Thread_local bool have;
	struct buf k = { kept, 0, sizeof(kept) };

	if (!o || !o->fsid || !o->node || !o->rid || strlen(o->fsid) >= NF_ORIGIN_MAX ||
	    strlen(o->node) >= NF_ORIGIN_MAX || strlen(o->rid) >= NF_ORIGIN_MAX) {
		json_open_new(b, o);
		return;
	}
	if (!have || !same_str(fsid, o->fsid) || !same_str(node, o->node) || !same_str(rid, o->rid)) {
		json_open_new(&k, o);
		have = k.len < sizeof(kept);
		kept_len = k.len;
		strcpy(fsid, o->fsid);
		strcpy(node, o->node);
		strcpy(rid, o->rid);
	}
	if (have)
		put(b, kept, kept_len);
	else
		json_open_new(b, o);
}

void nf_json_record(FILE *f, const nf_rec_t *r, const char *path, size_t path_len,
		    const struct nf_origin *origin)
{
	const char *name = nf_op_name(r->op);
	char stack[STACK_LINE];
	struct buf b;

	if (!buf_init(&b, stack, sizeof(stack), path_len + origin_len(origin)))
		return;
	json_open(&b, origin);
	JSON_NUM(&b, "seq", r->seq);
	PUTS(&b, ", \"op\": ");
	if (name) {
		putch(&b, '"');
		put(&b, name, strlen(name));
		putch(&b, '"');
	} else {
		put_u64(&b, r->op);
	}
	PUTS(&b, ", \"time\": \"");
	put_time(&b, r->time_ns);
	putch(&b, '"');
	JSON_NUM(&b, "time_ns", r->time_ns);
	JSON_NUM(&b, "pid", r->pid);
	JSON_NUM(&b, "uid", r->uid);
	JSON_NUM(&b, "gid", r->gid);
	JSON_NUM(&b, "ino", r->ino);
	JSON_NUM(&b, "offset", r->offset);
	JSON_NUM(&b, "len", r->len);
	JSON_NUM(&b, "flags", r->flags);
	if (r->calls)
		JSON_NUM(&b, "calls", r->calls);
	if (r->op == SCOUTFS_NOTIFY_OP_MMAP) {
		if (r->flags & SCOUTFS_NOTIFY_MMAP_SHARED)
			PUTS(&b, ", \"shared\": true");
		else
			PUTS(&b, ", \"shared\": false");
		if (r->flags & SCOUTFS_NOTIFY_MMAP_WRITE)
			PUTS(&b, ", \"writable\": true");
		else
			PUTS(&b, ", \"writable\": false");
	}
	if (path) {
		PUTS(&b, ", ");
		json_member(&b, "path", path, path_len);
	}
	PUTS(&b, "}\n");
	flush_buf(f, &b);
	buf_done(&b, stack);
}

/* " key=N" */
#define TEXT_NUM(b, key, v) do { PUTS(b, " " key "="); put_u64(b, v); } while (0)

void nf_text_record(FILE *f, const nf_rec_t *r, const char *path, size_t path_len)
{
	const char *name = nf_op_name(r->op);
	char stack[STACK_LINE];
	struct buf b;
	size_t n;

	if (!buf_init(&b, stack, sizeof(stack), path_len))
		return;
	put_time(&b, r->time_ns);
	TEXT_NUM(&b, "seq", r->seq);
	putch(&b, ' ');
	if (name) {
		/* %-6s: the op names padded to 6 */
		n = strlen(name);
		put(&b, name, n);
		for (; n < 6; n++)
			putch(&b, ' ');
	} else {
		PUTS(&b, "op=");
		put_u64(&b, r->op);
	}
	TEXT_NUM(&b, "pid", r->pid);
	TEXT_NUM(&b, "uid", r->uid);
	TEXT_NUM(&b, "gid", r->gid);
	switch (r->op) {
	case SCOUTFS_NOTIFY_OP_OPEN:
		TEXT_NUM(&b, "ino", r->ino);
		PUTS(&b, " flags=");
		put_oct(&b, r->flags);
		break;
	case SCOUTFS_NOTIFY_OP_READ:
		TEXT_NUM(&b, "ino", r->ino);
		TEXT_NUM(&b, "offset", r->offset);
		TEXT_NUM(&b, "len", r->len);
		break;
	case SCOUTFS_NOTIFY_OP_ATTACH:
		PUTS(&b, " (reader attached: records before this were not observed)");
		break;
	case SCOUTFS_NOTIFY_OP_MMAP:
		TEXT_NUM(&b, "ino", r->ino);
		TEXT_NUM(&b, "offset", r->offset);
		TEXT_NUM(&b, "len", r->len);
		if (r->flags & SCOUTFS_NOTIFY_MMAP_SHARED)
			PUTS(&b, " map=shared,");
		else
			PUTS(&b, " map=private,");
		if (r->flags & SCOUTFS_NOTIFY_MMAP_WRITE)
			PUTS(&b, "write");
		else
			PUTS(&b, "read");
		break;
	default:
		TEXT_NUM(&b, "ino", r->ino);
		TEXT_NUM(&b, "offset", r->offset);
		TEXT_NUM(&b, "len", r->len);
		PUTS(&b, " flags=");
		put_oct(&b, r->flags);
		break;
	}
	/* a merged record: how many calls it stands for */
	if (r->calls > 1)
		TEXT_NUM(&b, "calls", r->calls);
	if (path) {
		PUTS(&b, " path=");
		text_str(&b, path, path_len);
	}
	putch(&b, '\n');
	flush_buf(f, &b);
	buf_done(&b, stack);
}

void nf_text_gap(FILE *f, uint64_t after_seq, uint64_t seq)
{
	fprintf(f, "%" PRIu64 " records lost (seq %" PRIu64 " to %" PRIu64 ")\n",
		seq - after_seq - 1, after_seq + 1, seq - 1);
}

void nf_json_gap(FILE *f, uint64_t after_seq, uint64_t seq, const struct nf_origin *origin)
{
	char stack[LINE_FIXED + PATH_ROOM(64)];
	struct buf b;

	if (!buf_init(&b, stack, sizeof(stack), origin_len(origin)))
		return;
	json_open(&b, origin);
	PUTS(&b, ", \"op\": \"GAP\"");
	JSON_NUM(&b, "lost", seq - after_seq - 1);
	JSON_NUM(&b, "after_seq", after_seq);
	JSON_NUM(&b, "seq", seq);
	PUTS(&b, "}\n");
	flush_buf(f, &b);
	buf_done(&b, stack);
}

void nf_text_reset(FILE *f, uint64_t after_seq, uint64_t seq)
{
	fprintf(f, "seq went back from %" PRIu64 " to %" PRIu64
		" (the filesystem was mounted again)\n", after_seq, seq);
}

void nf_json_reset(FILE *f, uint64_t after_seq, uint64_t seq, const struct nf_origin *origin)
{
	char stack[LINE_FIXED + PATH_ROOM(64)];
	struct buf b;

	if (!buf_init(&b, stack, sizeof(stack), origin_len(origin)))
		return;
	json_open(&b, origin);
	PUTS(&b, ", \"op\": \"SEQ_RESET\", \"seq_reset\": true");
	JSON_NUM(&b, "after_seq", after_seq);
	JSON_NUM(&b, "seq", seq);
	PUTS(&b, "}\n");
	flush_buf(f, &b);
	buf_done(&b, stack);
}
