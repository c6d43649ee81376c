/*
 * See notify-nats.h.  Bad options are refused before anything is done,
 * with a message that says what is wrong; connection failures say
 * whether trying again can help.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notify-nats.h"

bool nn_token_ok(const char *s)
{
	size_t n = strlen(s);
	size_t i;

	if (n == 0 || n > NN_TOKEN_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/*
 * [nats://|tls://][user[:pass]@]host[:port]: what libnats takes, checked
 * here so that a typo is a clear error, not a connection that never
 * comes up.  The host is a name, IPv4 or [IPv6].
 */
static bool url_ok(const char *url, const char **why)
{
	const char *p = url;
	const char *at;
	const char *host;
	const char *end;
	char *e;
	long port;

	if (!strncmp(p, "nats://", 7))
		p += 7;
	else if (!strncmp(p, "tls://", 6))
		p += 6;
	else if (strstr(p, "://")) {
		*why = "the scheme must be nats:// or tls://";
		return false;
	}
	at = strrchr(p, '@');
	host = at ? at + 1 : p;
	if (*host == '[') {
		end = strchr(host, ']');
		if (!end || end == host + 1) {
			*why = "bad [IPv6] host";
			return false;
		}
		end++;
	} else {
		end = host;
		while (*end && (isalnum((unsigned char)*end) || *end == '.' || *end == '-' ||
				*end == '_'))
			end++;
		if (end == host) {
			*why = "no host";
			return false;
		}
	}
	if (*end == '\0')
		return true;
	if (*end != ':') {
		*why = "unexpected characters after the host";
		return false;
	}
	errno = 0;
	port = strtol(end + 1, &e, 10);
	if (errno || e == end + 1 || *e || port < 1 || port > 65535) {
		*why = "the port must be a number from 1 to 65535";
		return false;
	}
	return true;
}

int nn_opt(struct nn_opts *o, int c, const char *arg, const char *prog)
{
	const char *why = NULL;
	char *copy;
	char *tok;
	char *save = NULL;

	switch (c) {
	case 's':
		copy = strdup(arg);
		if (!copy || o->nbufs == NN_MAX_SERVERS) {
			free(copy);
			fprintf(stderr, "%s: too many --server options\n", prog);
			return -1;
		}
		o->urls_buf[o->nbufs++] = copy;
		tok = strtok_r(copy, ",", &save);
		if (!tok) {
			fprintf(stderr, "%s: empty NATS server URL\n", prog);
			return -1;
		}
		for (; tok; tok = strtok_r(NULL, ",", &save)) {
			if (!url_ok(tok, &why)) {
				fprintf(stderr, "%s: bad NATS server URL '%s': %s\n", prog, tok, why);
				return -1;
			}
			if (o->nservers == NN_MAX_SERVERS) {
				fprintf(stderr, "%s: more than %d servers\n", prog, NN_MAX_SERVERS);
				return -1;
			}
			o->servers[o->nservers++] = tok;
		}
		return 1;
	case 1000:
		o->creds = arg;
		return 1;
	case 1001:
		o->user = arg;
		return 1;
	case 1002:
		o->password_file = arg;
		return 1;
	case 1003:
		o->tls_ca = arg;
		return 1;
	case 1004:
		o->tls_cert = arg;
		return 1;
	case 1005:
		o->tls_key = arg;
		return 1;
	}
	return 0;
}

int nn_parse_opts(struct nn_opts *o, int argc, char **argv, const char *shortopts,
		  const struct option *longopts, int (*take)(int c, const char *arg),
		  void (*usage)(FILE *f), const char *prog)
{
	int ret;
	int c;

	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		ret = nn_opt(o, c, optarg, prog);
		if (ret < 0)
			return NN_EXIT_USAGE;
		if (ret > 0)
			continue;
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (take(c, optarg))
			return NN_EXIT_USAGE;
	}
	return -1;
}

/*
 * Both programs take their signals with sigtimedwait(): blocked in
 * every thread (the library's too, which inherit the mask).
 */
void nn_block_signals(sigset_t *set, int sig)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, sig);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

static int readable(const char *what, const char *path, const char *prog)
{
	if (path && access(path, R_OK)) {
		fprintf(stderr, "%s: %s %s: %s\n", prog, what, path, strerror(errno));
		return -1;
	}
	return 0;
}

int nn_check(struct nn_opts *o, const char *prog)
{
	const char *env = getenv("NATS_PASSWORD");
	FILE *f;
	size_t cap = 0;
	ssize_t n;

	if (o->nservers == 0)
		o->servers[o->nservers++] = NN_DEFAULT_SERVER;
	if (readable("credentials file", o->creds, prog) ||
	    readable("password file", o->password_file, prog) ||
	    readable("TLS CA file", o->tls_ca, prog) ||
	    readable("TLS certificate", o->tls_cert, prog) ||
	    readable("TLS key", o->tls_key, prog))
		return -1;
	if (!!o->tls_cert != !!o->tls_key) {
		fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", prog);
		return -1;
	}
	if (o->creds && o->user) {
		fprintf(stderr, "%s: --creds and --user exclude each other\n", prog);
		return -1;
	}
	if (o->password_file && !o->user) {
		fprintf(stderr, "%s: --password-file needs --user\n", prog);
		return -1;
	}
	if (o->user && o->password_file) {
		f = fopen(o->password_file, "re");
		if (!f || (n = getline(&o->password, &cap, f)) < 0) {
			fprintf(stderr, "%s: cannot read a password from %s\n", prog,
				o->password_file);
			if (f)
				fclose(f);
			return -1;
		}
		fclose(f);
		while (n > 0 && (o->password[n - 1] == '\n' || o->password[n - 1] == '\r'))
			o->password[--n] = '\0';
	} else if (o->user) {
		if (!env) {
			fprintf(stderr, "%s: --user needs a password: set NATS_PASSWORD or use --password-file\n",
				prog);
			return -1;
		}
		o->password = strdup(env);
		if (!o->password)
			return -1;
	}
	return 0;
}

/*
 * Errors the server sends on a connection that stays up, e.g. a
 * permissions violation: logged, at most once a minute for the same
 * text, with the program's name.
 */
static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
			   void *closure)
{
	static char last[256];
	static time_t last_time;
	const char *prog = closure;
	const char *text = NULL;
	time_t now = time(NULL);

	(void)sub;
	natsConnection_GetLastError(nc, &text);
	if (!text || !*text)
		text = natsStatus_GetText(err);
	if (!strncmp(last, text, sizeof(last) - 1) && now - last_time < 60)
		return;
	snprintf(last, sizeof(last), "%s", text);
	last_time = now;
	fprintf(stderr, "<4>%s: NATS: %s\n", prog, text);
}

static const char *last_error(natsStatus s)
{
	const char *text = nats_GetLastError(NULL);

	return text && *text ? text : natsStatus_GetText(s);
}

int nn_connect(natsConnection **nc, struct nn_opts *o, bool reconnect,
	       natsConnectionHandler disconnected, natsConnectionHandler reconnected,
	       void *closure, const char *prog)
{
	natsOptions *no = NULL;
	natsStatus s;
	int ret = NN_EXIT_TRANSIENT;

	s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = natsOptions_SetServers(no, o->servers, o->nservers);
	if (s == NATS_OK)
		s = natsOptions_SetNoRandomize(no, false);
	if (s == NATS_OK && o->name)
		s = natsOptions_SetName(no, o->name);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(no, on_async_error, (void *)prog);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, 5000);
	if (s == NATS_OK && o->creds)
		s = natsOptions_SetUserCredentialsFromFiles(no, o->creds, NULL);
	if (s == NATS_OK && o->user)
		s = natsOptions_SetUserInfo(no, o->user, o->password);
	if (s == NATS_OK && o->tls_ca) {
		s = natsOptions_SetSecure(no, true);
		if (s == NATS_OK)
			s = natsOptions_LoadCATrustedCertificates(no, o->tls_ca);
	}
	if (s == NATS_OK && o->tls_cert)
		s = natsOptions_LoadCertificatesChain(no, o->tls_cert, o->tls_key);
	if (s == NATS_OK && reconnect) {
		s = natsOptions_SetMaxReconnect(no, -1);
		if (s == NATS_OK)
			s = natsOptions_SetReconnectWait(no, 250);
		if (s == NATS_OK)
			s = natsOptions_SetReconnectJitter(no, 100, 500);
		if (s == NATS_OK && disconnected)
			s = natsOptions_SetDisconnectedCB(no, disconnected, closure);
		if (s == NATS_OK && reconnected)
			s = natsOptions_SetReconnectedCB(no, reconnected, closure);
	}
	if (s != NATS_OK) {
		fprintf(stderr, "%s: NATS options: %s\n", prog, last_error(s));
		ret = NN_EXIT_PERMANENT;
		goto out;
	}
	s = natsConnection_Connect(nc, no);
	if (s == NATS_OK) {
		ret = 0;
		goto out;
	}
	switch (s) {
	case NATS_CONNECTION_AUTH_FAILED:
	case NATS_NOT_PERMITTED:
		fprintf(stderr, "%s: NATS refused the credentials: %s\n", prog, last_error(s));
		ret = NN_EXIT_PERMANENT;
		break;
	case NATS_SSL_ERROR:
	case NATS_SECURE_CONNECTION_WANTED:
	case NATS_SECURE_CONNECTION_REQUIRED:
		fprintf(stderr, "%s: TLS with the NATS server failed: %s\n", prog, last_error(s));
		ret = NN_EXIT_PERMANENT;
		break;
	default:
		fprintf(stderr, "%s: cannot connect to NATS at %s%s: %s\n", prog, o->servers[0],
			o->nservers > 1 ? " (or the other servers given)" : "", last_error(s));
		ret = NN_EXIT_TRANSIENT;
		break;
	}
out:
	natsOptions_Destroy(no);
	return ret;
}

void nn_free(struct nn_opts *o)
{
	int i;

	for (i = 0; i < NN_MAX_SERVERS; i++)
		free(o->urls_buf[i]);
	free(o->password);
	memset(o, 0, sizeof(*o));
}

uint64_t nn_msg_seq(natsMsg *m, int64_t *stored_ns)
{
	jsMsgMetaData *meta = NULL;
	uint64_t seq = 0;

	if (stored_ns)
		*stored_ns = 0;
	if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
		seq = meta->Sequence.Stream;
		if (stored_ns)
			*stored_ns = meta->Timestamp;
		jsMsgMetaData_Destroy(meta);
	}
	return seq;
}

/*
 * libnats before 3.9.0 overflows the list it fills when a fetch begins
 * with messages still pending from an earlier one that timed out (late
 * deliveries of its pull request): it takes those first, then asks the
 * server for the rest of the batch and compares what it collected with
 * that smaller number, so it can collect past the batch and the end of
 * its array (nats.c #749, "Fix heap buffer overflow in _fetch").  Seen
 * here as a SEGV in natsMsgList_Destroy() under load.  So what is
 * pending is taken alone first, a fetch of exactly that many, which
 * collects them all and sends no request.
 */
natsStatus nn_fetch(natsMsgList *list, natsSubscription *sub, int batch, int64_t wait_ms,
		    jsErrCode *jerr, const char *prog)
{
	int pending = 0;
	natsStatus s;

	if (natsSubscription_GetPending(sub, &pending, NULL) == NATS_OK && pending > 0 &&
	    pending < batch)
		batch = pending;
	s = natsSubscription_Fetch(list, sub, batch, wait_ms, jerr);
	if (s == NATS_OK && list->Count > batch) {
		fprintf(stderr, "%s: libnats returned %d messages for a fetch of %d (its heap"
			" overflow, nats.c #749): exiting; NATS delivers them again\n", prog,
			list->Count, batch);
		_exit(NN_EXIT_TRANSIENT);
	}
	return s;
}
