/*
 * File names are untrusted input: tests/vm/daemon-test.sh runs this to
 * have an unprivileged user create and read files whose names a user
 * could choose to forge records or break parsers, and then to check
 * what scoutfs-notify-watch printed for them.
 *
 *   hostile-names create DIR     (as the user) create and read each name
 *   hostile-names count          the records that makes (OPEN, OPEN, READ)
 *   hostile-names text DIR FILE  FILE (text output) has the daemon's
 *                                ATTACH line, then one line per
 *                                record and each path= decodes (\\ and
 *                                \xHH) to DIR/<name>, exactly
 *   hostile-names json DIR FILE  FILE (--json output): the ATTACH, then
 *                                each line is one
 *                                strict RFC 8259 JSON object in valid
 *                                UTF-8, and path (or path_b64) gives
 *                                back DIR/<name>, exactly
 *
 * (Every client's first line is the ATTACH record the daemon sends it
 * first: when the observation began.  It has no path.)
 *
 * The JSON parser here is written for the check, independent of the
 * encoder it checks: it rejects anything RFC 8259 does (bad UTF-8,
 * raw control characters, bad escapes, lone surrogates, trailing
 * bytes).  Prints PASS/FAIL lines and exits non-zero on any failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *names[] = {
	"innocent\n2026-01-01T00:00:00.000000000Z seq=424242 READ   pid=1 uid=0 gid=0 ino=1 "
	"offset=0 len=4096 path=\xe2\x88\x95mnt\xe2\x88\x95secret\xe2\x88\x95payroll.db",
	"tab\there\ttoo",
	"quote\"d 'single' and \\backslash\\x41",
	"bad\xff\xfe utf8 \xc0\xaf overlong \xed\xa0\x80 surrogate",
	"\xe2\x88\x95" "etc\xe2\x88\x95shadow",
	"cr\rlf\r\n \x1b[31mred\x1b[0m \x7f del",
	"bidi \xe2\x80\xae" "evil\xe2\x80\xac line\xe2\x80\xa8sep \xc2\x85 nel",
	"caf\xc3\xa9 \xf0\x9f\x93\x81 ok",
	"path=fake uid=0 len=1",
};
#define NR_NAMES (sizeof(names) / sizeof(names[0]))
#define RECS_PER_NAME 3

static int failed;

/* a PASS or FAIL line */
#define result(ok, ...)					\
	do {							\
		bool ok_ = (ok);				\
		printf("%s: ", ok_ ? "PASS" : "FAIL");		\
		printf(__VA_ARGS__);				\
		putchar('\n');					\
		if (!ok_)					\
			failed++;				\
	} while (0)

static char *slurp(const char *path, size_t *len)
{
	static char buf[1 << 20];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	*len = 0;
	if (fd < 0)
		return NULL;
	while ((n = read(fd, buf + *len, sizeof(buf) - 1 - *len)) > 0)
		*len += n;
	close(fd);
	buf[*len] = 0;
	return buf;
}

/* DIR/<name i>, the path the records must give back */
static size_t want_path(char *out, size_t size, const char *dir, size_t i)
{
	return snprintf(out, size, "%s/%s", dir, names[i]);
}

static int create(const char *dir)
{
	char path[4096];
	char buf[16];
	size_t i;
	int fd;

	for (i = 0; i < NR_NAMES; i++) {
		want_path(path, sizeof(path), dir, i);
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0 || write(fd, "x\n", 2) != 2 || close(fd)) {
			printf("hostile-names: create name %zu: %s\n", i, strerror(errno));
			return 1;
		}
		fd = open(path, O_RDONLY);
		if (fd < 0 || read(fd, buf, sizeof(buf)) != 2 || read(fd, buf, sizeof(buf)) != 0 ||
		    close(fd)) {
			printf("hostile-names: read name %zu: %s\n", i, strerror(errno));
			return 1;
		}
	}
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* the n-th expected path of record r (each name: OPEN, OPEN, READ) */
static size_t want_of(char *out, size_t size, const char *dir, size_t r)
{
	return want_path(out, size, dir, r / RECS_PER_NAME);
}

static int check_text(const char *dir, const char *file)
{
	char want[4096];
	char got[4096];
	size_t len, wl, gl, r = 0;
	char *buf = slurp(file, &len);
	char *line, *end, *p, *q;
	bool clean;

	if (!buf) {
		result(false, "text: read %s", file);
		return 1;
	}
	for (line = buf; line < buf + len; line = end + 1) {
		end = memchr(line, '\n', buf + len - line);
		if (!end)
			end = buf + len;
		*end = 0;
		if (line == buf) {
			result(strstr(line, " ATTACH ") && !strstr(line, " path="),
			       "text: line 0 is the daemon's ATTACH");
			continue;
		}
		/* the path is the field " path=", up to the next space */
		p = strstr(line, " path=");
		clean = true;
		gl = 0;
		if (p) {
			for (p += 6; *p && *p != ' ' && gl < sizeof(got); p++) {
				if ((unsigned char)*p < 0x21 || *p == 0x7f)
					clean = false;
				if (p[0] == '\\' && p[1] == '\\') {
					got[gl++] = '\\';
					p++;
				} else if (p[0] == '\\' && p[1] == 'x' && hexval(p[2]) >= 0 &&
					   hexval(p[3]) >= 0) {
					got[gl++] = (char)(hexval(p[2]) << 4 | hexval(p[3]));
					p += 3;
				} else if (p[0] == '\\') {
					clean = false;	/* no other escape exists */
				} else {
					got[gl++] = *p;
				}
			}
			q = p;
			if (*q)
				clean = false;	/* a space inside or after the path */
		}
		wl = r < NR_NAMES * RECS_PER_NAME ? want_of(want, sizeof(want), dir, r) : 0;
		result(p && clean && gl == wl && memcmp(got, want, wl) == 0,
		       "text: line %zu is one record and its path decodes to the name's exact bytes",
		       r + 1);
		r++;
	}
	result(r == NR_NAMES * RECS_PER_NAME, "text: %zu lines, one per record", r);
	return failed;
}

/* --- a strict JSON parser (RFC 8259), just enough to check and extract */

struct js {
	const unsigned char *p, *end;
	char path[4096];
	size_t path_len;
	bool has_path;
	char b64[8192];
	size_t b64_len;
	bool has_b64;
	int depth;
};

static void ws(struct js *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int hex4(struct js *j, uint32_t *v)
{
	int i, h;

	*v = 0;
	for (i = 0; i < 4; i++) {
		if (j->p >= j->end || (h = hexval(*j->p | 0x20)) < 0)
			return -1;
		*v = *v << 4 | h;
		j->p++;
	}
	return 0;
}

static size_t put_utf8(char *o, uint32_t c)
{
	if (c < 0x80) {
		o[0] = c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = 0xc0 | c >> 6;
		o[1] = 0x80 | (c & 63);
		return 2;
	}
	if (c < 0x10000) {
		o[0] = 0xe0 | c >> 12;
		o[1] = 0x80 | ((c >> 6) & 63);
		o[2] = 0x80 | (c & 63);
		return 3;
	}
	o[0] = 0xf0 | c >> 18;
	o[1] = 0x80 | ((c >> 12) & 63);
	o[2] = 0x80 | ((c >> 6) & 63);
	o[3] = 0x80 | (c & 63);
	return 4;
}

/* a string; its decoded bytes go to out (size) when out is set */
static int string(struct js *j, char *out, size_t size, size_t *olen)
{
	char tmp[4];
	size_t n = 0, k, i;
	uint32_t c, lo;

	if (j->p >= j->end || *j->p++ != '"')
		return -1;
	for (;;) {
		if (j->p >= j->end)
			return -1;
		c = *j->p;
		if (c == '"') {
			j->p++;
			break;
		}
		if (c < 0x20)
			return -1;	/* raw control character */
		if (c == '\\') {
			j->p++;
			if (j->p >= j->end)
				return -1;
			c = *j->p++;
			switch (c) {
			case '"': case '\\': case '/': break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u':
				if (hex4(j, &c))
					return -1;
				if (c >= 0xdc00 && c <= 0xdfff)
					return -1;	/* lone low surrogate */
				if (c >= 0xd800 && c <= 0xdbff) {
					if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
						return -1;
					j->p += 2;
					if (hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff)
						return -1;
					c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
				}
				break;
			default:
				return -1;
			}
			k = put_utf8(tmp, c);
		} else {
			/* one UTF-8 sequence, validated strictly */
			if (c < 0x80) {
				k = 1;
			} else if (c >= 0xc2 && c <= 0xdf) {
				k = 2;
			} else if (c >= 0xe0 && c <= 0xef) {
				k = 3;
			} else if (c >= 0xf0 && c <= 0xf4) {
				k = 4;
			} else {
				return -1;
			}
			if (j->end - j->p < (long)k)
				return -1;
			c &= k == 1 ? 0x7f : k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07;
			for (i = 1; i < k; i++) {
				if ((j->p[i] & 0xc0) != 0x80)
					return -1;
				c = c << 6 | (j->p[i] & 63);
			}
			if ((k == 3 && c < 0x800) || (k == 4 && (c < 0x10000 || c > 0x10ffff)) ||
			    (c >= 0xd800 && c <= 0xdfff))
				return -1;
			memcpy(tmp, j->p, k);
			j->p += k;
		}
		if (out) {
			if (n + k > size)
				return -1;
			memcpy(out + n, tmp, k);
		}
		n += k;
	}
	if (olen)
		*olen = n;
	return 0;
}

static int value(struct js *j);

static int number(struct js *j)
{
	const unsigned char *s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end)
		return -1;
	if (*j->p == '0') {
		j->p++;
	} else if (*j->p >= '1' && *j->p <= '9') {
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	} else {
		return -1;
	}
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -1;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -1;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > s ? 0 : -1;
}

static int word(struct js *j, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
		return -1;
	j->p += n;
	return 0;
}

static int object(struct js *j)
{
	char key[64];
	size_t kl;
	bool top = j->depth == 1;

	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		ws(j);
		if (string(j, key, sizeof(key) - 1, &kl))
			return -1;
		key[kl] = 0;
		ws(j);
		if (j->p >= j->end || *j->p++ != ':')
			return -1;
		ws(j);
		if (top && !strcmp(key, "path") && j->p < j->end && *j->p == '"') {
			if (string(j, j->path, sizeof(j->path), &j->path_len))
				return -1;
			j->has_path = true;
		} else if (top && !strcmp(key, "path_b64") && j->p < j->end && *j->p == '"') {
			if (string(j, j->b64, sizeof(j->b64), &j->b64_len))
				return -1;
			j->has_b64 = true;
		} else if (value(j)) {
			return -1;
		}
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		return -1;
	}
}

static int array(struct js *j)
{
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		if (value(j))
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return 0;
		}
		return -1;
	}
}

static int value(struct js *j)
{
	int ret;

	ws(j);
	if (j->p >= j->end || ++j->depth > 64)
		return -1;
	switch (*j->p) {
	case '{': ret = object(j); break;
	case '[': ret = array(j); break;
	case '"': ret = string(j, NULL, 0, NULL); break;
	case 't': ret = word(j, "true"); break;
	case 'f': ret = word(j, "false"); break;
	case 'n': ret = word(j, "null"); break;
	default: ret = number(j); break;
	}
	j->depth--;
	return ret;
}

static size_t unbase64(const char *s, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t v = 0;
	size_t n = 0, i, bits = 0;
	const char *c;

	for (i = 0; i < len && s[i] != '='; i++) {
		c = strchr(tab, s[i]);
		if (!c || !s[i])
			return (size_t)-1;
		v = v << 6 | (uint32_t)(c - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)(v >> bits);
		}
	}
	return n;
}

static int check_json(const char *dir, const char *file)
{
	char want[4096];
	char raw[8192];
	size_t len, wl, gl, r = 0;
	char *buf = slurp(file, &len);
	char *line, *end;
	struct js j;
	bool ok;

	if (!buf) {
		result(false, "json: read %s", file);
		return 1;
	}
	for (line = buf; line < buf + len; line = end + 1) {
		end = memchr(line, '\n', buf + len - line);
		if (!end)
			end = buf + len;
		memset(&j, 0, sizeof(j));
		j.p = (const unsigned char *)line;
		j.end = (const unsigned char *)end;
		ws(&j);
		ok = j.p < j.end && *j.p == '{' && value(&j) == 0;
		ws(&j);
		ok = ok && j.p == j.end;
		if (line == buf) {
			result(ok && memmem(line, end - line, "\"op\": \"ATTACH\"", 14) &&
			       !j.has_path && !j.has_b64,
			       "json: line 0 is the daemon's ATTACH, strict JSON");
			continue;
		}
		result(ok, "json: line %zu is one strict RFC 8259 object in valid UTF-8", r + 1);
		if (j.has_b64) {
			gl = unbase64(j.b64, j.b64_len, raw);
		} else {
			gl = j.path_len;
			memcpy(raw, j.path, gl);
		}
		wl = r < NR_NAMES * RECS_PER_NAME ? want_of(want, sizeof(want), dir, r) : 0;
		result(ok && (j.has_path || j.has_b64) && gl == wl && memcmp(raw, want, wl) == 0,
		       "json: line %zu gives back the name's exact bytes (path or path_b64)",
		       r + 1);
		r++;
	}
	result(r == NR_NAMES * RECS_PER_NAME, "json: %zu lines, one per record", r);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "count")) {
		printf("%zu\n", NR_NAMES * RECS_PER_NAME);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "create"))
		return create(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "text"))
		return check_text(argv[2], argv[3]) ? 1 : 0;
	if (argc == 4 && !strcmp(argv[1], "json"))
		return check_json(argv[2], argv[3]) ? 1 : 0;
	fprintf(stderr, "usage: hostile-names count | create DIR | text DIR FILE | json DIR FILE\n");
	return 2;
}
