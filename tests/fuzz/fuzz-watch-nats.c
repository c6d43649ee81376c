/*
 * libFuzzer target: scoutfs-notify-watch-nats's handling of whole
 * stream messages, subject and payload (it reads no header), through
 * its own code: take_msg() (the order and duplicate bookkeeping),
 * print_msg() (the subject's and the payload's agreement, batches) and
 * release() (what waited for its order), as its fetch loop calls them.
 * The program is included whole, its main() renamed; the messages are
 * this file's (libnats's natsMsg is opaque: the program reads a message
 * through the natsMsg_ functions below only, and those here give it the
 * subject and payload, no reply subject and no JetStream metadata, and
 * free it at once), and so is its clock (each message comes 250 ms
 * after the one before): a run is repeatable and quick.
 *
 * The input is messages separated by 0x1e, each a subject, 0x1f and the
 * payload.  Properties, beyond ASan, UBSan and LeakSanitizer:
 *
 * - what is printed is lines of valid UTF-8 without a control or
 *   invisible character, one line per record or gap it counts;
 * - in JSON every line is a record or gap that notify-json.c parses;
 * - one node cannot change what is printed for another: the text lines
 *   of node n1 are the same when every message whose subject is not
 *   n1's is left out (the messages another node's credentials can
 *   publish, with the per-node permissions of docs/stream.md).
 */
#include "fuzzlib.h"

#include <time.h>
#include <nats/nats.h>

static uint64_t fake_ms;

static int fuzz_clock_gettime(clockid_t id, struct timespec *ts)
{
	(void)id;
	ts->tv_sec = (time_t)(fake_ms / 1000);
	ts->tv_nsec = (long)(fake_ms % 1000) * 1000000L;
	return 0;
}

/* a stream message: what the program asks of it */
struct __natsMsg {
	char *subj;
	char *data;
	int len;
};

static natsStatus fz_create(natsMsg **m, const char *subj, const char *data, int len)
{
	*m = calloc(1, sizeof(**m));
	(*m)->subj = strdup(subj);
	(*m)->data = malloc((size_t)len + 1);
	memcpy((*m)->data, data, (size_t)len);
	(*m)->data[len] = 0;	/* as libnats's */
	(*m)->len = len;
	return NATS_OK;
}

static void fz_destroy(natsMsg *m)
{
	if (!m)
		return;
	free(m->subj);
	free(m->data);
	free(m);
}

static const char *fz_subject(const natsMsg *m) { return m->subj; }
static const char *fz_data(const natsMsg *m) { return m->data; }
static int fz_data_len(const natsMsg *m) { return m->len; }
static const char *fz_reply(const natsMsg *m) { (void)m; return NULL; }

/* notify-nats.c's lookup of the JetStream metadata: these messages have none */
static uint64_t fz_msg_seq(natsMsg *m, int64_t *stored_ns)
{
	(void)m;
	if (stored_ns)
		*stored_ns = 0;
	return 0;
}

/* acknowledgements: the harness's consumer is not durable, it never acks */
static natsStatus fz_ack(natsMsg *m, jsOptions *o) { (void)m; (void)o; abort(); }
static natsStatus fz_ack_sync(natsMsg *m, jsOptions *o, jsErrCode *e) { (void)m; (void)o; (void)e; abort(); }
static natsStatus fz_nak(natsMsg *m, int64_t d, jsOptions *o) { (void)m; (void)d; (void)o; abort(); }
static natsStatus fz_progress(natsMsg *m, jsOptions *o) { (void)m; (void)o; abort(); }

#define natsMsg_Destroy fz_destroy
#define natsMsg_GetSubject fz_subject
#define natsMsg_GetData fz_data
#define natsMsg_GetDataLength fz_data_len
#define natsMsg_GetReply fz_reply
#define nn_msg_seq fz_msg_seq
#define natsMsg_Ack fz_ack
#define natsMsg_AckSync fz_ack_sync
#define natsMsg_NakWithDelay fz_nak
#define natsMsg_InProgress fz_progress
#define clock_gettime fuzz_clock_gettime
#define main watch_nats_main
#include "scoutfs-notify-watch-nats.c"
#undef main
#undef clock_gettime

#define MSG_SEP		0x1e
#define SUBJ_SEP	0x1f
#define MSGS_MAX	64

/* forget every mount, as a new run of the program */
static void reset(void)
{
	size_t i;
	size_t k;

	for (i = 0; i < norigins; i++) {
		for (k = 0; k < origins[i].nheld; k++)
			natsMsg_Destroy(origins[i].held[k].m);
		free(origins[i].held);
		free(origins[i].lost);
	}
	free(origins);
	origins = NULL;
	norigins = 0;
	free(done);
	done = NULL;
	ndone = done_cap = 0;
	printed = duplicates = 0;
}

/* the fetch loop's work after a message came (or, with !m, a pull that brought none) */
static void one_fetch(natsMsg *m)
{
	int ret = 0;
	size_t i;

	for (i = 0; i < norigins; i++)
		release(&origins[i], false);
	if (m)
		take_msg(m);
	flush_and_ack(false, &ret);
}

/* is this message's subject node n1's (scoutfs.notify.<fsid>.n1.<op>)? */
static bool n1s(const char *subj)
{
	char fs[NN_TOKEN_MAX + 1];
	char nd[NN_TOKEN_MAX + 1];
	char op[NN_TOKEN_MAX + 1];

	return split_subject(subj, fs, nd, op, sizeof(fs)) && !strcmp(nd, "n1");
}

struct msg {
	char *subj;
	const char *data;
	size_t len;
};

/*
 * Run the messages through the program (only node n1's with only_n1,
 * the others' turns a pull that brought nothing) and return what it
 * printed, checked line by line.
 */
static char *run(const struct msg *msgs, int n, bool as_json, bool only_n1, size_t *len)
{
	struct fz_out out;
	const char *why = "";
	FILE *saved = stdout;
	uint64_t lines_before;
	natsMsg *m;
	long lines;
	int i;

	opt.json = as_json;
	fake_ms = 1000000;
	fz_open(&out);
	stdout = out.f;
	for (i = 0; i < n; i++) {
		fake_ms += 250;
		m = NULL;
		if ((!only_n1 || n1s(msgs[i].subj)) &&
		    fz_create(&m, msgs[i].subj, msgs[i].data, (int)msgs[i].len) != NATS_OK)
			m = NULL;
		one_fetch(m);
	}
	/* the program's end: what still waits is let go (a pull that timed out) */
	fake_ms += 60000;
	one_fetch(NULL);
	lines_before = printed;
	stdout = saved;
	fz_close(&out);
	lines = fz_lines(out.buf, out.len, &why);
	FZ_ASSERT(lines >= 0, "output: %s", why);
	FZ_ASSERT((uint64_t)lines == lines_before, "%ld lines for %llu records and gaps", lines,
		  (unsigned long long)lines_before);
	reset();
	*len = out.len;
	return out.buf;
}

/* every JSON line is a record or gap notify-json.c parses */
static void check_json_lines(const char *buf, size_t len)
{
	struct nj_record r;
	const char *p = buf;
	const char *nl;
	char err[160];

	while (p < buf + len) {
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		FZ_ASSERT(!nj_parse(p, (size_t)(nl - p), &r, err, sizeof(err)),
			  "a JSON line that does not parse: %s: %.*s", err, (int)(nl - p), p);
		nj_free(&r);
		p = nl + 1;
	}
}

/* n1's text lines: "fsid=<fsid> node=n1 ..." (a space ends the escaped fsid) */
static size_t n1_lines(const char *buf, size_t len, char *out)
{
	const char *p = buf;
	const char *nl;
	const char *sp;
	size_t o = 0;

	while (p < buf + len) {
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp && nl - sp > 9 && !memcmp(sp, " node=n1 ", 9)) {
			memcpy(out + o, p, (size_t)(nl - p) + 1);
			o += (size_t)(nl - p) + 1;
		}
		p = nl + 1;
	}
	return o;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	stderr = fopen("/dev/null", "w");	/* what it says of bad messages */
	opt.reorder_ms = 1000;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg msgs[MSGS_MAX];
	const char *p = (const char *)data;
	const char *end = p + size;
	const char *sep;
	const char *us;
	char *a;
	char *b;
	char *c;
	size_t alen;
	size_t blen;
	size_t clen;
	size_t an1;
	size_t bn1;
	int n = 0;
	int i;

	while (p < end && n < MSGS_MAX) {
		sep = memchr(p, MSG_SEP, (size_t)(end - p));
		if (!sep)
			sep = end;
		us = memchr(p, SUBJ_SEP, (size_t)(sep - p));
		if (us) {
			msgs[n].subj = strndup(p, (size_t)(us - p));
			msgs[n].data = us + 1;
			msgs[n].len = (size_t)(sep - us - 1);
			n++;
		}
		p = sep + 1;
	}

	a = run(msgs, n, false, false, &alen);
	b = run(msgs, n, false, true, &blen);
	c = run(msgs, n, true, false, &clen);
	check_json_lines(c, clen);
	{
		char *with = malloc(alen + 1);
		char *without = malloc(blen + 1);

		an1 = n1_lines(a, alen, with);
		bn1 = n1_lines(b, blen, without);
		FZ_ASSERT(an1 == bn1 && !memcmp(with, without, bn1),
			  "node n1's lines change with other nodes' messages:\n"
			  "with them:\n%.*s\nwithout:\n%.*s", (int)an1, with, (int)bn1, without);
		free(with);
		free(without);
	}
	free(a);
	free(b);
	free(c);
	for (i = 0; i < n; i++)
		free(msgs[i].subj);
	return 0;
}
