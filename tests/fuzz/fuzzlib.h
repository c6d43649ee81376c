/*
 * What the fuzz targets (tests/fuzz/fuzz-*.c) check their outputs
 * with, written here independently of the code under test so that a
 * bug there is not repeated in the check: strict UTF-8, one record per
 * line, no character that changes how a line reads, and the text
 * form's byte escapes decoded back.  A broken property is a crash
 * (abort with a message), which libFuzzer reports with the input.
 */
#ifndef _FUZZLIB_H_
#define _FUZZLIB_H_

#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_ASSERT(cond, ...)							\
	do {									\
		if (!(cond)) {							\
			fprintf(fz_err(), "fuzz property broken: %s (%s:%d): ", #cond,	\
				__FILE__, __LINE__);				\
			fprintf(fz_err(), __VA_ARGS__);				\
			fputc('\n', fz_err());					\
			fflush(fz_err());					\
			abort();						\
		}								\
	} while (0)

/* the real stderr, also when a target points stderr elsewhere */
static inline FILE *fz_err(void)
{
	static FILE *f;

	if (!f)
		f = fdopen(2, "w");
	return f ? f : stderr;
}

/*
 * The code point of the UTF-8 sequence at s (n bytes left) in *cp and
 * its length, or 0 when it is not valid UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF).
 */
static inline size_t fz_utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t want;
	size_t i;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		want = 2;
		c = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		want = 3;
		c = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		want = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < want)
		return 0;
	for (i = 1; i < want; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((want == 2 && c < 0x80) || (want == 3 && c < 0x800) || (want == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return want;
}

/* characters that change how a line reads without being seen */
static inline bool fz_invisible(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c || (cp >= 0x200b && cp <= 0x200f) ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff;
}

/*
 * s (n bytes) is lines, each ended by '\n', of valid UTF-8 with no
 * control character (other than the '\n's) and no invisible
 * character; returns the number of lines, or -1 (with why) if not.
 */
static inline long fz_lines(const char *str, size_t n, const char **why)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;
	size_t i = 0;
	size_t k;
	long lines = 0;

	if (n && s[n - 1] != '\n') {
		*why = "output does not end with a newline";
		return -1;
	}
	while (i < n) {
		k = fz_utf8(s + i, n - i, &cp);
		if (!k) {
			*why = "not valid UTF-8";
			return -1;
		}
		if (cp == '\n')
			lines++;
		else if (cp < 0x20 || cp == 0x7f) {
			*why = "a control character";
			return -1;
		} else if (fz_invisible(cp)) {
			*why = "an invisible character";
			return -1;
		}
		i += k;
	}
	return lines;
}

static inline int fz_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;	/* upper case is not the form */
}

/*
 * The text form of a string (notify-format.h: "\\\\" and "\\xHH",
 * no space, nothing else escaped) decoded into out (at least n bytes):
 * its length, or -1 when s is not of that form.
 */
static inline long fz_text_decode(const char *s, size_t n, char *out)
{
	size_t i;
	long o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == ' ')
			return -1;
		if (s[i] != '\\') {
			out[o++] = s[i];
		} else if (i + 1 < n && s[i + 1] == '\\') {
			out[o++] = '\\';
			i++;
		} else if (i + 3 < n && s[i + 1] == 'x' && fz_hex(s[i + 2]) >= 0 &&
			   fz_hex(s[i + 3]) >= 0) {
			out[o++] = (char)(fz_hex(s[i + 2]) << 4 | fz_hex(s[i + 3]));
			i += 3;
		} else {
			return -1;
		}
	}
	return o;
}

/* a memory stream for what the code under test prints */
struct fz_out {
	char *buf;
	size_t len;
	FILE *f;
};

static inline FILE *fz_open(struct fz_out *o)
{
	o->buf = NULL;
	o->len = 0;
	o->f = open_memstream(&o->buf, &o->len);
	FZ_ASSERT(o->f, "open_memstream");
	return o->f;
}

static inline void fz_close(struct fz_out *o)
{
	FZ_ASSERT(fclose(o->f) == 0, "fclose of a memory stream");
	o->f = NULL;
}

/* little-endian (host order) fields of a socket message, unaligned */
static inline uint16_t fz_get16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t fz_get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * The grant a client's message must get, from interface.md's request
 * layout, not the daemon's parser: a 16-byte "SNRQ" version 1 request
 * with no flags and a zero reserved word earns the smaller of what it
 * asks and 256; anything else 0 (refused).
 */
static inline uint32_t fz_model_grant(const unsigned char *m, size_t len)
{
	uint32_t want;

	if (len != 16 || memcmp(m, "SNRQ", 4) || fz_get16(m + 4) != 1 || fz_get16(m + 6) ||
	    fz_get32(m + 12))
		return 0;
	want = fz_get32(m + 8);
	return want < 256 ? want : 256;
}

#endif
