/*
 * See notify-json.h.  A recursive descent over one flat object; every
 * string is decoded to its exact bytes (escapes and surrogate pairs
 * included), numbers that fields need are unsigned 64 bit integers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify-json.h"

struct pstate {
	const unsigned char *s;
	size_t len;
	size_t pos;
	char *err;
	size_t errlen;
};

static int fail(struct pstate *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(p->err, p->errlen, "at byte %zu: ", p->pos);
	if (n < 0 || (size_t)n >= p->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - n, fmt, ap);
	va_end(ap);
	return -1;
}

/* JSON's whitespace; a byte over ' ' (almost every one) is one test */
static void ws(struct pstate *p)
{
	while (p->pos < p->len && p->s[p->pos] <= ' ' &&
	       (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
		p->s[p->pos] == '\r'))
		p->pos++;
}

static int hex4(struct pstate *p, uint32_t *v)
{
	int i;
	int c;

	if (p->len - p->pos < 4)
		return fail(p, "short \\u escape");
	*v = 0;
	for (i = 0; i < 4; i++) {
		c = p->s[p->pos++];
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*v |= c - 'A' + 10;
		else
			return fail(p, "bad \\u escape");
	}
	return 0;
}

static void put_utf8(char *out, size_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		out[(*o)++] = cp;
	} else if (cp < 0x800) {
		out[(*o)++] = 0xc0 | (cp >> 6);
		out[(*o)++] = 0x80 | (cp & 0x3f);
	} else if (cp < 0x10000) {
		out[(*o)++] = 0xe0 | (cp >> 12);
		out[(*o)++] = 0x80 | ((cp >> 6) & 0x3f);
		out[(*o)++] = 0x80 | (cp & 0x3f);
	} else {
		out[(*o)++] = 0xf0 | (cp >> 18);
		out[(*o)++] = 0x80 | ((cp >> 12) & 0x3f);
		out[(*o)++] = 0x80 | ((cp >> 6) & 0x3f);
		out[(*o)++] = 0x80 | (cp & 0x3f);
	}
}

/* n bytes at *o of buf (cap bytes), as far as they fit; *o counts them all */
static void emit(char *buf, size_t cap, size_t *o, const void *src, size_t n)
{
	if (*o + n < cap)
		memcpy(buf + *o, src, n);
	*o += n;
}

/* a \u escape (p->pos after the u), with the low half of a surrogate pair */
static int unicode_escape(struct pstate *p, uint32_t *cp)
{
	uint32_t lo;

	if (hex4(p, cp))
		return -1;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return fail(p, "lone low surrogate");
	if (*cp < 0xd800 || *cp > 0xdbff)
		return 0;
	if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
		return fail(p, "lone high surrogate");
	p->pos += 2;
	if (hex4(p, &lo))
		return -1;
	if (lo < 0xdc00 || lo > 0xdfff)
		return fail(p, "bad surrogate pair");
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	return 0;
}

/* the escape at p->pos (after the backslash), decoded at *o of buf */
static int escape(struct pstate *p, char *buf, size_t cap, size_t *o)
{
	static const char from[] = "\"\\/bfnrt";
	static const char to[] = "\"\\/\b\f\n\r\t";
	char utf8[4];
	const char *e;
	size_t n = 0;
	uint32_t cp;
	int c;

	if (p->pos >= p->len)
		return fail(p, "unterminated escape");
	c = p->s[p->pos++];
	e = c ? strchr(from, c) : NULL;
	if (e) {
		emit(buf, cap, o, &to[e - from], 1);
		return 0;
	}
	if (c != 'u')
		return fail(p, "bad escape \\%c", c);
	if (unicode_escape(p, &cp))
		return -1;
	put_utf8(utf8, &n, cp);
	emit(buf, cap, o, utf8, n);
	return 0;
}

/*
 * Whether the 8 bytes at s are all printable ASCII but '"' and '\\',
 * tested at once (a string's bytes are almost all that): a byte of 0x80
 * or more has its high bit set; one under 0x20 sets it once 0x20 is
 * taken from it; '"' and '\\' are a zero byte once xored with
 * themselves.  A borrow may flag a byte that is not one of those, never
 * miss one: a flagged word is then read a byte at a time.
 */
static bool plain8(const unsigned char *s)
{
	const uint64_t ones = 0x0101010101010101ull;
	const uint64_t highs = ones << 7;
	uint64_t x;
	uint64_t q;
	uint64_t b;

	memcpy(&x, s, sizeof(x));
	q = x ^ (ones * '"');
	b = x ^ (ones * '\\');
	return !((x | ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs);
}

/*
 * The string at p->pos (its opening quote), decoded into buf (cap
 * bytes) and NUL ended; *out_len is its decoded length, which is cap
 * or more when it did not fit (then buf holds only its start).  Runs
 * of printable ASCII, almost all of a record, are found 8 bytes at a
 * time (plain8()) and copied at once.
 */
static int string_in(struct pstate *p, char *buf, size_t cap, size_t *out_len)
{
	size_t o = 0;
	size_t run;
	uint32_t cp;
	size_t n;
	int c;

	if (p->pos >= p->len || p->s[p->pos] != '"')
		return fail(p, "expected a string");
	p->pos++;
	for (;;) {
		for (run = p->pos; p->len - run >= 8 && plain8(p->s + run); run += 8)
			;
		for (; run < p->len && p->s[run] >= 0x20 && p->s[run] < 0x80 && p->s[run] != '"' &&
		       p->s[run] != '\\'; run++)
			;
		emit(buf, cap, &o, p->s + p->pos, run - p->pos);
		p->pos = run;
		if (p->pos >= p->len)
			return fail(p, "unterminated string");
		c = p->s[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			return fail(p, "control character in a string");
		if (c == '\\') {
			p->pos++;
			if (escape(p, buf, cap, &o))
				return -1;
			continue;
		}
		n = nf_utf8_seq(p->s + p->pos, p->len - p->pos, &cp);
		if (n == 0)
			return fail(p, "invalid UTF-8");
		emit(buf, cap, &o, p->s + p->pos, n);
		p->pos += n;
	}
	buf[o < cap ? o : cap - 1] = 0;
	*out_len = o;
	return 0;
}

/*
 * A number (RFC 8259 grammar).  *u gets it when it is an unsigned
 * integer that fits 64 bits, and *is_u says whether it did.
 */
static int number(struct pstate *p, uint64_t *u, bool *is_u)
{
	size_t start = p->pos;
	bool integer = true;
	uint64_t v = 0;

	if (p->pos < p->len && p->s[p->pos] == '-') {
		integer = false;
		p->pos++;
	}
	if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
		return fail(p, "bad number");
	if (p->s[p->pos] == '0' && p->pos + 1 < p->len &&
	    p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')
		return fail(p, "leading zero");
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
		unsigned int d = p->s[p->pos] - '0';

		/* v * 10 + d > UINT64_MAX, without a division per digit */
		if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
			integer = false;
		v = v * 10 + d;
		p->pos++;
	}
	if (p->pos < p->len && p->s[p->pos] == '.') {
		integer = false;
		p->pos++;
		if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
			return fail(p, "bad fraction");
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		integer = false;
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
			return fail(p, "bad exponent");
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
	}
	(void)start;
	*u = v;
	*is_u = integer;
	return 0;
}

static int literal(struct pstate *p, const char *word)
{
	size_t n = strlen(word);

	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
		return fail(p, "bad value");
	p->pos += n;
	return 0;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* strict RFC 4648 base64 (padded), decoded in place; -1 if malformed */
static int unbase64(char *s, size_t len, size_t *out_len)
{
	size_t i;
	size_t o = 0;
	int v[4];
	int pad;
	int k;

	if (len % 4)
		return -1;
	for (i = 0; i < len; i += 4) {
		pad = 0;
		for (k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad || (v[k] = b64val((unsigned char)s[i + k])) < 0) {
				return -1;
			}
		}
		s[o++] = (char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			s[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			s[o++] = (char)((v[2] & 3) << 6 | v[3]);
	}
	*out_len = o;
	return 0;
}

/* in the order notify-format.c writes them, which the searches below begin with */
enum { F_SCHEMA, F_FSID, F_NODE, F_RID, F_SEQ, F_OP, F_TIME, F_TIME_NS, F_PID, F_UID, F_GID,
       F_INO, F_OFFSET, F_LEN, F_FLAGS, F_CALLS, F_SHARED, F_WRITABLE, F_PATH, F_PATH_B64,
       F_LOST, F_AFTER_SEQ, F_NR };

static const char *const names[F_NR] = {
	"schema", "fsid", "node", "rid", "seq", "op", "time", "time_ns", "pid", "uid", "gid",
	"ino", "offset", "len", "flags", "calls", "shared", "writable", "path", "path_b64",
	"lost", "after_seq",
};

/* longer than every field's name: a longer key is one this parser does not know */
#define KEY_MAX 16

/*
 * The field a key of klen decoded bytes names, F_NR for none.  Records
 * have their keys in the encoders' order, so the search begins after
 * the field before (*next).
 */
static int field(const char *key, size_t klen, int *next)
{
	int f;
	int i;

	if (klen >= KEY_MAX || strlen(key) != klen)
		return F_NR;
	for (i = 0, f = *next < F_NR ? *next : 0; i < F_NR; i++, f = f + 1 < F_NR ? f + 1 : 0) {
		if (names[f][0] == key[0] && !strcmp(names[f], key)) {
			*next = f + 1;
			return f;
		}
	}
	return F_NR;
}

/*
 * The key at p->pos (its opening quote) when its bytes are a field's
 * name as they stand, no escape in them, which is how every encoder
 * writes keys: that field, p->pos past the closing quote, without
 * decoding a copy.  F_NR, p->pos unmoved, for any other key, which is
 * then decoded and looked up (field()).  The search is field()'s.
 */
static int raw_field(struct pstate *p, int *next)
{
	const unsigned char *s = p->s + p->pos + 1;
	size_t room = p->len - p->pos - 1;
	const char *name;
	size_t n;
	int f;
	int i;

	for (i = 0, f = *next < F_NR ? *next : 0; i < F_NR; i++, f = f + 1 < F_NR ? f + 1 : 0) {
		name = names[f];
		for (n = 0; name[n] && n < room && s[n] == (unsigned char)name[n]; n++)
			;
		if (!name[n] && n < room && s[n] == '"') {
			p->pos += n + 2;
			*next = f + 1;
			return f;
		}
	}
	return F_NR;
}

int nj_parse(const char *buf, size_t len, struct nj_record *r, char *err, size_t errlen)
{
	struct pstate p = { (const unsigned char *)buf, len, 0, err, errlen };
	bool seen[F_NR] = { false };
	uint64_t num[F_NR] = { 0 };
	bool is_u[F_NR] = { false };
	bool is_bool[F_NR] = { false };
	bool truth[F_NR] = { false };
	char *str[F_NR] = { NULL };
	char *mem = NULL;
	size_t used = 0;
	size_t slen[F_NR] = { 0 };
	char when[NF_TIME_LEN];
	char key[KEY_MAX];
	size_t klen;
	int next = 0;
	uint64_t u = 0;
	bool isu = false;
	int f;
	int i;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	mem = malloc(len + 1);
	if (!mem) {
		fail(&p, "out of memory");
		goto out;
	}
	ws(&p);
	if (p.pos >= p.len || p.s[p.pos] != '{') {
		fail(&p, "not a JSON object");
		goto out;
	}
	p.pos++;
	ws(&p);
	if (p.pos < p.len && p.s[p.pos] == '}') {
		fail(&p, "empty object");
		goto out;
	}
	for (;;) {
		ws(&p);
		if (p.pos >= p.len || p.s[p.pos] != '"') {
			fail(&p, "expected a string");
			goto out;
		}
		f = raw_field(&p, &next);
		if (f == F_NR) {
			if (string_in(&p, key, sizeof(key), &klen))
				goto out;
			f = field(key, klen, &next);
		}
		if (f < F_NR && seen[f]) {
			fail(&p, "\"%s\" twice", names[f]);
			goto out;
		}
		ws(&p);
		if (p.pos >= p.len || p.s[p.pos] != ':') {
			fail(&p, "expected ':'");
			goto out;
		}
		p.pos++;
		ws(&p);
		if (p.pos >= p.len) {
			fail(&p, "missing value");
			goto out;
		}
		if (p.s[p.pos] == '"') {
			size_t vl;

			/* decoded in place after the strings kept; an unknown key's is dropped */
			if (string_in(&p, mem + used, len + 1 - used, &vl))
				goto out;
			if (vl >= len + 1 - used) {
				fail(&p, "a string longer decoded than encoded");
				goto out;
			}
			if (f < F_NR) {
				str[f] = mem + used;
				slen[f] = vl;
				seen[f] = true;
				used += vl + 1;
			}
		} else if (p.s[p.pos] == 't' || p.s[p.pos] == 'f' || p.s[p.pos] == 'n') {
			const char *w = p.s[p.pos] == 't' ? "true" :
					p.s[p.pos] == 'f' ? "false" : "null";

			if (literal(&p, w))
				goto out;
			if (f < F_NR && w[0] != 'n') {
				truth[f] = w[0] == 't';
				is_bool[f] = true;
				seen[f] = true;
			} else if (f < F_NR) {
				fail(&p, "\"%s\" is null", names[f]);
				goto out;
			}
		} else if (p.s[p.pos] == '{' || p.s[p.pos] == '[') {
			fail(&p, "nested values are not part of a record");
			goto out;
		} else {
			if (number(&p, &u, &isu))
				goto out;
			if (f < F_NR) {
				num[f] = u;
				is_u[f] = isu;
				seen[f] = true;
			}
		}
		ws(&p);
		if (p.pos < p.len && p.s[p.pos] == ',') {
			p.pos++;
			continue;
		}
		if (p.pos < p.len && p.s[p.pos] == '}') {
			p.pos++;
			break;
		}
		fail(&p, "expected ',' or '}'");
		goto out;
	}
	ws(&p);
	if (p.pos != p.len) {
		fail(&p, "data after the object");
		goto out;
	}

	/* the types each known field must have */
	for (f = 0; f < F_NR; f++) {
		bool want_str = f == F_TIME || f == F_PATH || f == F_PATH_B64 || f == F_FSID ||
				f == F_NODE || f == F_RID;
		bool want_bool = f == F_SHARED || f == F_WRITABLE;

		if (!seen[f] || f == F_OP)
			continue;
		if (want_str && !str[f]) {
			fail(&p, "\"%s\" must be a string", names[f]);
			goto out;
		}
		if (want_bool && !is_bool[f]) {
			fail(&p, "\"%s\" must be true or false", names[f]);
			goto out;
		}
		if (!want_str && !want_bool && !is_u[f]) {
			fail(&p, "\"%s\" must be an unsigned integer", names[f]);
			goto out;
		}
	}
	if (!seen[F_SCHEMA] || num[F_SCHEMA] != NF_JSON_SCHEMA) {
		fail(&p, "not schema %d", NF_JSON_SCHEMA);
		goto out;
	}
	if (!seen[F_OP] || !seen[F_SEQ]) {
		fail(&p, "\"op\" and \"seq\" are required");
		goto out;
	}
	for (f = F_FSID; f <= F_RID; f++) {
		if (str[f] && strlen(str[f]) != slen[f]) {
			fail(&p, "\"%s\" holds a NUL", names[f]);
			goto out;
		}
	}
	if (str[F_OP] && !strcmp(str[F_OP], "GAP")) {
		/* after_seq < seq - 1, written so that it can't wrap */
		if (!seen[F_AFTER_SEQ] || !seen[F_LOST] || num[F_SEQ] <= num[F_AFTER_SEQ] ||
		    num[F_SEQ] - num[F_AFTER_SEQ] < 2 ||
		    num[F_LOST] != num[F_SEQ] - num[F_AFTER_SEQ] - 1) {
			fail(&p, "a GAP needs after_seq < seq - 1 and lost = seq - after_seq - 1");
			goto out;
		}
		r->gap = true;
		r->after_seq = num[F_AFTER_SEQ];
		r->seq = num[F_SEQ];
		r->lost = num[F_LOST];
	} else {
		static const int need[] = { F_TIME, F_TIME_NS, F_PID, F_UID, F_GID, F_INO,
					    F_OFFSET, F_LEN, F_FLAGS };

		for (i = 0; i < (int)(sizeof(need) / sizeof(need[0])); i++) {
			if (!seen[need[i]]) {
				fail(&p, "\"%s\" is required", names[need[i]]);
				goto out;
			}
		}
		if (str[F_OP]) {
			for (u = 0; u < 256; u++) {
				const char *n = nf_op_name((uint32_t)u);

				if (n && !strcmp(n, str[F_OP]))
					break;
			}
			if (u == 256) {
				fail(&p, "unknown op name");
				goto out;
			}
			r->rec.op = (uint32_t)u;
		} else if (seen[F_OP] && is_u[F_OP] && num[F_OP] <= UINT32_MAX) {
			r->rec.op = (uint32_t)num[F_OP];
		} else {
			fail(&p, "\"op\" must be a name or a 32 bit number");
			goto out;
		}
		for (f = F_PID; f <= F_GID; f++) {
			if (num[f] > UINT32_MAX) {
				fail(&p, "\"%s\" over 32 bits", names[f]);
				goto out;
			}
		}
		if (num[F_FLAGS] > UINT32_MAX) {
			fail(&p, "\"flags\" over 32 bits");
			goto out;
		}
		/* written only for merged records' readers, and then at least 1 */
		if (seen[F_CALLS] && (num[F_CALLS] == 0 || num[F_CALLS] > UINT32_MAX)) {
			fail(&p, "\"calls\" must be 1 to 2^32-1");
			goto out;
		}
		nf_time(num[F_TIME_NS], when, sizeof(when));
		if (slen[F_TIME] != strlen(when) || memcmp(when, str[F_TIME], slen[F_TIME])) {
			fail(&p, "\"time\" is not \"time_ns\"");
			goto out;
		}
		if ((seen[F_SHARED] && truth[F_SHARED] != !!(num[F_FLAGS] & SCOUTFS_NOTIFY_MMAP_SHARED)) ||
		    (seen[F_WRITABLE] && truth[F_WRITABLE] != !!(num[F_FLAGS] & SCOUTFS_NOTIFY_MMAP_WRITE))) {
			fail(&p, "\"shared\" or \"writable\" is not what \"flags\" says");
			goto out;
		}
		r->rec.seq = num[F_SEQ];
		r->rec.time_ns = num[F_TIME_NS];
		r->rec.pid = (uint32_t)num[F_PID];
		r->rec.uid = (uint32_t)num[F_UID];
		r->rec.gid = (uint32_t)num[F_GID];
		r->rec.ino = num[F_INO];
		r->rec.offset = num[F_OFFSET];
		r->rec.len = num[F_LEN];
		r->rec.flags = (uint32_t)num[F_FLAGS];
		r->rec.calls = (uint32_t)num[F_CALLS];
		r->seq = num[F_SEQ];
		if (str[F_PATH_B64] && !str[F_PATH]) {
			fail(&p, "\"path_b64\" without \"path\"");
			goto out;
		}
		if (str[F_PATH_B64]) {
			if (unbase64(str[F_PATH_B64], slen[F_PATH_B64], &slen[F_PATH_B64])) {
				fail(&p, "\"path_b64\" is not base64");
				goto out;
			}
			str[F_PATH] = str[F_PATH_B64];
			slen[F_PATH] = slen[F_PATH_B64];
		}
		r->path = str[F_PATH];
		r->path_len = slen[F_PATH];
	}
	r->fsid = str[F_FSID];
	r->node = str[F_NODE];
	r->rid = str[F_RID];
	r->mem = mem;
	mem = NULL;
	ret = 0;
out:
	free(mem);
	return ret;
}

void nj_free(struct nj_record *r)
{
	free(r->mem);
	memset(r, 0, sizeof(*r));
}
