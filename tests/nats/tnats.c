/*
 * tnats: the tests' own window on a real NATS server (Debian has no
 * `nats` command line tool), built on libnats like the tools under
 * test.  Every mode connects to URL (user and password from
 * $TNATS_USER and $TNATS_PASSWORD when set) and exits 0 when it did
 * what it was asked, 1 otherwise with the server's reason on stderr.
 *
 *   tnats dump URL STREAM        every message: "<seq> <subject> <msg id> <payload>"
 *                                (a payload's newlines printed as 0x1f)
 *   tnats info URL STREAM        "msgs=N bytes=B first=F last=L replicas=R first_ns=T last_ns=T"
 *                                (the stored times of the first and last message)
 *   tnats ready URL -            JetStream answers (a cluster has its leader)
 *   tnats republish URL STREAM SEQ  publish message SEQ again, same subject
 *                                and Nats-Msg-Id: prints "duplicate" or "stored"
 *   tnats get URL STREAM SEQ     the payload of message SEQ
 *   tnats mkstream URL STREAM R  a stream as scoutfs-notify-forward makes it
 *                                (scoutfs.notify.>, file, R replicas)
 *   tnats rmstream URL STREAM    delete it (no error if it isn't there)
 *   tnats rmmsg URL STREAM SEQ   delete message SEQ
 *   tnats durable URL STREAM NAME explicit|all|none FILTER
 *                                a durable pull consumer with those acks and filter
 *   tnats pub URL SUBJECT        one JetStream publish (prints the ack)
 *   tnats put URL SUBJECT ID     publish stdin (a line each) as one message with msg id ID
 *   tnats putmany URL -          publish stdin's lines "SUBJECT<TAB>ID<TAB>PAYLOAD"
 *                                (ID "-": no msg id; 0x1f in PAYLOAD: a newline)
 *                                in order, asynchronously, then wait for every
 *                                ack: prints "stored N duplicate M"
 *   tnats drain URL STREAM       the bare consumer of the benchmark: read every
 *                                message with an ephemeral pull consumer (no
 *                                acks, batches of 1024): "msgs/s=X secs=S msgs=N"
 *   tnats corepub URL SUBJECT    one plain publish, flushed (permission errors
 *                                come back asynchronously: reported too)
 *   tnats bench URL SUBJECT N SIZE MAXPENDING [R]
 *                                the bare publish loop of the benchmark: N
 *                                async JetStream publishes of SIZE byte
 *                                payloads with unique msg ids, then wait for
 *                                every ack; prints "msgs/s=X"
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <nats/nats.h>

static volatile int async_err;

static void on_err(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	const char *text = NULL;

	(void)sub;
	(void)closure;
	natsConnection_GetLastError(nc, &text);
	fprintf(stderr, "tnats: async error: %s: %s\n", natsStatus_GetText(err), text ? text : "");
	async_err = 1;
}

static natsConnection *conn(const char *url)
{
	natsConnection *nc = NULL;
	natsOptions *o = NULL;
	natsStatus s;

	natsOptions_Create(&o);
	natsOptions_SetURL(o, url);
	natsOptions_SetErrorHandler(o, on_err, NULL);
	if (getenv("TNATS_USER"))
		natsOptions_SetUserInfo(o, getenv("TNATS_USER"), getenv("TNATS_PASSWORD"));
	s = natsConnection_Connect(&nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
		fprintf(stderr, "tnats: connect %s: %s\n", url, natsStatus_GetText(s));
		exit(1);
	}
	return nc;
}

static jsCtx *jsctx(natsConnection *nc)
{
	jsCtx *js = NULL;
	jsOptions o;

	jsOptions_Init(&o);
	o.Wait = 10000;
	if (natsConnection_JetStream(&js, nc, &o) != NATS_OK)
		exit(1);
	return js;
}

static void fail(const char *what, natsStatus s, jsErrCode e)
{
	const char *text = nats_GetLastError(NULL);

	fprintf(stderr, "tnats: %s: %s (%s, %d)\n", what, text ? text : "", natsStatus_GetText(s),
		(int)e);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long put_stored;
static long put_dups;
static long put_errors;

static void on_put_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)closure;
	if (pae)
		put_errors++;
	else if (pa && pa->Duplicate)
		put_dups++;
	else
		put_stored++;
	natsMsg_Destroy(m);
}

int main(int argc, char **argv)
{
	natsConnection *nc;
	jsCtx *js;
	jsErrCode e = 0;
	natsStatus s;
	int ret = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: see tnats.c\n");
		return 2;
	}
	nc = conn(argv[2]);
	js = jsctx(nc);

	if (!strcmp(argv[1], "ready")) {
		jsAccountInfo *ai = NULL;

		s = js_GetAccountInfo(&ai, js, NULL, &e);
		if (s != NATS_OK)
			fail("account info", s, e);
		jsAccountInfo_Destroy(ai);
		printf("ready\n");
	} else if (!strcmp(argv[1], "info")) {
		jsStreamInfo *si = NULL;

		s = js_GetStreamInfo(&si, js, argv[3], NULL, &e);
		if (s != NATS_OK)
			fail("stream info", s, e);
		printf("msgs=%" PRIu64 " bytes=%" PRIu64 " first=%" PRIu64 " last=%" PRIu64
		       " replicas=%" PRId64 " first_ns=%" PRId64 " last_ns=%" PRId64 "\n",
		       si->State.Msgs, si->State.Bytes, si->State.FirstSeq, si->State.LastSeq,
		       si->Config->Replicas, si->State.FirstTime, si->State.LastTime);
		jsStreamInfo_Destroy(si);
	} else if (!strcmp(argv[1], "dump")) {
		/* an ephemeral pull consumer from the first message: fast, batched */
		jsStreamInfo *si = NULL;
		jsConsumerConfig cc;
		jsConsumerInfo *ci = NULL;
		jsSubOptions so;
		natsSubscription *sub = NULL;
		natsMsgList list;
		jsMsgMetaData *meta;
		const char *id;
		uint64_t got = 0;
		int idle = 0;

		s = js_GetStreamInfo(&si, js, argv[3], NULL, &e);
		if (s != NATS_OK)
			fail("stream info", s, e);
		jsConsumerConfig_Init(&cc);
		cc.DeliverPolicy = js_DeliverAll;
		cc.AckPolicy = js_AckNone;
		cc.InactiveThreshold = 60LL * 1000000000LL;
		/* a cluster that just lost a server may take a while */
		for (int tries = 0; tries < 10; tries++) {
			s = js_AddConsumer(&ci, js, argv[3], &cc, NULL, &e);
			if (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS)
				break;
			nats_Sleep(500);
		}
		if (s != NATS_OK)
			fail("add consumer", s, e);
		jsSubOptions_Init(&so);
		so.Stream = argv[3];
		so.Consumer = ci->Name;
		s = js_PullSubscribe(&sub, js, ">", NULL, NULL, &so, &e);
		if (s != NATS_OK)
			fail("pull subscribe", s, e);
		while (got < si->State.Msgs && idle < 60) {
			memset(&list, 0, sizeof(list));
			s = natsSubscription_Fetch(&list, sub, 1000, 1000, &e);
			if (s == NATS_TIMEOUT || (s == NATS_OK && !list.Count)) {
				idle++;
				continue;
			}
			if (s != NATS_OK)
				fail("fetch", s, e);
			for (int k = 0; k < list.Count; k++) {
				natsMsg *m = list.Msgs[k];

				meta = NULL;
				natsMsg_GetMetaData(&meta, m);
				id = NULL;
				natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
				printf("%" PRIu64 " %s %s ", meta ? meta->Sequence.Stream : 0,
				       natsMsg_GetSubject(m), id ? id : "-");
				/* one line a message: the lines of a batched one joined by 0x1f */
				for (int i = 0; i < natsMsg_GetDataLength(m); i++)
					putchar(natsMsg_GetData(m)[i] == '\n' ? 0x1f : natsMsg_GetData(m)[i]);
				putchar('\n');
				jsMsgMetaData_Destroy(meta);
				got++;
			}
			natsMsgList_Destroy(&list);
		}
		if (got < si->State.Msgs) {
			fprintf(stderr, "tnats: dump: %" PRIu64 " of %" PRIu64 " messages\n", got,
				si->State.Msgs);
			ret = 1;
		}
		natsSubscription_Destroy(sub);
		js_DeleteConsumer(js, argv[3], ci->Name, NULL, NULL);
		jsConsumerInfo_Destroy(ci);
		jsStreamInfo_Destroy(si);
	} else if (!strcmp(argv[1], "republish") && argc == 5) {
		natsMsg *m = NULL;
		jsPubAck *pa = NULL;
		jsPubOptions po;
		const char *id = NULL;

		s = js_GetMsg(&m, js, argv[3], strtoull(argv[4], NULL, 10), NULL, &e);
		if (s != NATS_OK)
			fail("get", s, e);
		natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
		jsPubOptions_Init(&po);
		po.MsgId = id;
		s = js_Publish(&pa, js, natsMsg_GetSubject(m), natsMsg_GetData(m),
			       natsMsg_GetDataLength(m), &po, &e);
		if (s != NATS_OK)
			fail("publish", s, e);
		printf("%s\n", pa->Duplicate ? "duplicate" : "stored");
		jsPubAck_Destroy(pa);
		natsMsg_Destroy(m);
	} else if (!strcmp(argv[1], "get") && argc == 5) {
		natsMsg *m = NULL;

		s = js_GetMsg(&m, js, argv[3], strtoull(argv[4], NULL, 10), NULL, &e);
		if (s != NATS_OK)
			fail("get", s, e);
		printf("%.*s\n", natsMsg_GetDataLength(m), natsMsg_GetData(m));
		natsMsg_Destroy(m);
	} else if (!strcmp(argv[1], "mkstream") && argc == 5) {
		const char *subjects[] = { "scoutfs.notify.>" };
		jsStreamConfig cfg;
		jsStreamInfo *si = NULL;

		jsStreamConfig_Init(&cfg);
		cfg.Name = argv[3];
		cfg.Subjects = subjects;
		cfg.SubjectsLen = 1;
		cfg.Storage = js_FileStorage;
		cfg.Replicas = atoi(argv[4]);
		cfg.MaxAge = 7LL * 24 * 3600 * 1000000000LL;
		cfg.MaxBytes = 10LL << 30;
		cfg.Duplicates = 120LL * 1000000000LL;
		s = js_AddStream(&si, js, &cfg, NULL, &e);
		if (s != NATS_OK)
			fail("add stream", s, e);
		jsStreamInfo_Destroy(si);
	} else if (!strcmp(argv[1], "durable") && argc == 7) {
		/* durable URL STREAM NAME explicit|all|none FILTER: made as given */
		jsConsumerConfig cc;
		jsConsumerInfo *ci = NULL;

		jsConsumerConfig_Init(&cc);
		cc.Durable = argv[4];
		cc.AckPolicy = !strcmp(argv[5], "explicit") ? js_AckExplicit :
			       !strcmp(argv[5], "all") ? js_AckAll : js_AckNone;
		cc.FilterSubject = argv[6];
		s = js_AddConsumer(&ci, js, argv[3], &cc, NULL, &e);
		if (s != NATS_OK)
			fail("add consumer", s, e);
		jsConsumerInfo_Destroy(ci);
	} else if (!strcmp(argv[1], "rmmsg") && argc == 5) {
		s = js_DeleteMsg(js, argv[3], strtoull(argv[4], NULL, 10), NULL, &e);
		if (s != NATS_OK)
			fail("delete message", s, e);
	} else if (!strcmp(argv[1], "rmstream")) {
		s = js_DeleteStream(js, argv[3], NULL, &e);
		if (s != NATS_OK && s != NATS_NOT_FOUND)
			fail("delete stream", s, e);
	} else if (!strcmp(argv[1], "pub")) {
		jsPubAck *pa = NULL;

		s = js_Publish(&pa, js, argv[3], "{}", 2, NULL, &e);
		if (s != NATS_OK)
			fail("publish", s, e);
		printf("stored in %s at %" PRIu64 "\n", pa->Stream, pa->Sequence);
		jsPubAck_Destroy(pa);
	} else if (!strcmp(argv[1], "put") && argc == 5) {
		char buf[65536];
		size_t len = fread(buf, 1, sizeof(buf), stdin);
		jsPubAck *pa = NULL;
		jsPubOptions po;

		while (len && buf[len - 1] == '\n')
			len--;
		jsPubOptions_Init(&po);
		po.MsgId = argv[4];
		s = js_Publish(&pa, js, argv[3], buf, (int)len, &po, &e);
		if (s != NATS_OK)
			fail("publish", s, e);
		printf("%s %" PRIu64 "\n", pa->Duplicate ? "duplicate" : "stored", pa->Sequence);
		jsPubAck_Destroy(pa);
	} else if (!strcmp(argv[1], "drain")) {
		jsStreamInfo *si = NULL;
		jsConsumerConfig cc;
		jsConsumerInfo *ci = NULL;
		jsSubOptions so;
		natsSubscription *sub = NULL;
		natsMsgList list;
		uint64_t got = 0;
		double t0 = now();

		s = js_GetStreamInfo(&si, js, argv[3], NULL, &e);
		if (s != NATS_OK)
			fail("stream info", s, e);
		jsConsumerConfig_Init(&cc);
		cc.DeliverPolicy = js_DeliverAll;
		cc.AckPolicy = js_AckNone;
		cc.InactiveThreshold = 60LL * 1000000000LL;
		s = js_AddConsumer(&ci, js, argv[3], &cc, NULL, &e);
		if (s != NATS_OK)
			fail("add consumer", s, e);
		jsSubOptions_Init(&so);
		so.Stream = argv[3];
		so.Consumer = ci->Name;
		s = js_PullSubscribe(&sub, js, ">", NULL, NULL, &so, &e);
		if (s != NATS_OK)
			fail("pull subscribe", s, e);
		while (got < si->State.Msgs) {
			memset(&list, 0, sizeof(list));
			s = natsSubscription_Fetch(&list, sub, 1024, 1000, &e);
			if (s != NATS_OK && s != NATS_TIMEOUT)
				fail("fetch", s, e);
			got += (uint64_t)list.Count;
			natsMsgList_Destroy(&list);
		}
		printf("msgs/s=%.0f secs=%.3f msgs=%" PRIu64 "\n", got / (now() - t0), now() - t0, got);
		natsSubscription_Destroy(sub);
		js_DeleteConsumer(js, argv[3], ci->Name, NULL, NULL);
		jsConsumerInfo_Destroy(ci);
		jsStreamInfo_Destroy(si);
	} else if (!strcmp(argv[1], "putmany")) {
		static char line[1 << 20];
		jsOptions o;
		jsPubOptions po;
		jsCtx *ajs = NULL;

		jsOptions_Init(&o);
		o.PublishAsync.MaxPending = 4096;
		o.PublishAsync.AckHandler = on_put_ack;
		/* wait while MaxPending are in flight, not a NATS_TIMEOUT to publish again */
		o.PublishAsync.StallWait = 120000;
		if (natsConnection_JetStream(&ajs, nc, &o) != NATS_OK)
			return 1;
		while (fgets(line, sizeof(line), stdin)) {
			char *subj = line;
			char *id = strchr(subj, '\t');
			char *data = id ? strchr(id + 1, '\t') : NULL;
			size_t len;

			if (!data)
				continue;
			*id++ = 0;
			*data++ = 0;
			len = strlen(data);
			if (len && data[len - 1] == '\n')
				data[--len] = 0;
			for (size_t i = 0; i < len; i++)
				if (data[i] == 0x1f)
					data[i] = '\n';
			jsPubOptions_Init(&po);
			po.MsgId = strcmp(id, "-") ? id : NULL;
			do {
				s = js_PublishAsync(ajs, subj, data, (int)len, &po);
			} while (s == NATS_TIMEOUT);
			if (s != NATS_OK)
				fail("publish", s, 0);
		}
		jsPubOptions_Init(&po);
		po.MaxWait = 120000;
		s = js_PublishAsyncComplete(ajs, &po);
		if (s != NATS_OK || put_errors)
			fail("complete", s != NATS_OK ? s : NATS_ERR, 0);
		printf("stored %ld duplicate %ld\n", put_stored, put_dups);
		jsCtx_Destroy(ajs);
	} else if (!strcmp(argv[1], "corepub")) {
		s = natsConnection_PublishString(nc, argv[3], "{}");
		if (s == NATS_OK)
			s = natsConnection_FlushTimeout(nc, 5000);
		if (s != NATS_OK)
			fail("publish", s, 0);
		/*
		 * A permissions violation arrives as an -ERR, reported to the
		 * error handler by another thread: give it 5 s to come.
		 */
		for (int i = 0; i < 100 && !async_err; i++) {
			natsConnection_FlushTimeout(nc, 1000);
			nats_Sleep(50);
		}
		if (async_err)
			ret = 1;
		else
			printf("published\n");
	} else if (!strcmp(argv[1], "bench") && argc >= 7) {
		long n = atol(argv[4]);
		long size = atol(argv[5]);
		jsOptions o;
		jsPubOptions po;
		jsCtx *bjs = NULL;
		char *payload = malloc(size);
		char id[64];
		double t0;
		double t;
		long i;

		memset(payload, 'x', size);
		jsOptions_Init(&o);
		o.PublishAsync.MaxPending = atol(argv[6]);
		o.PublishAsync.StallWait = 200;
		if (natsConnection_JetStream(&bjs, nc, &o) != NATS_OK)
			fail("JetStream", NATS_ERR, 0);
		t0 = now();
		for (i = 0; i < n; i++) {
			snprintf(id, sizeof(id), "bench.%s.%ld", argc > 7 ? argv[7] : "0", i);
			jsPubOptions_Init(&po);
			po.MsgId = id;
			do {
				s = js_PublishAsync(bjs, argv[3], payload, (int)size, &po);
			} while (s == NATS_TIMEOUT);
			if (s != NATS_OK)
				fail("publish", s, 0);
		}
		jsPubOptions_Init(&po);
		po.MaxWait = 60000;
		s = js_PublishAsyncComplete(bjs, &po);
		if (s != NATS_OK)
			fail("complete", s, 0);
		t = now() - t0;
		printf("msgs/s=%.0f secs=%.3f\n", n / t, t);
		jsCtx_Destroy(bjs);
		free(payload);
	} else {
		fprintf(stderr, "usage: see tnats.c\n");
		ret = 2;
	}
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	/* and wait for the library's threads, which may still free what they delivered */
	nats_CloseAndWait(5000);
	return ret;
}
