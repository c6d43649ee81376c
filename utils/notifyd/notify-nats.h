/*
 * What scoutfs-notify-forward and scoutfs-notify-watch-nats share: the
 * options that connect to NATS as real deployments do (several server
 * URLs, a credentials file, user and password, TLS with a CA), checked
 * before anything is done, and the stream's subjects and names.
 */
#ifndef _SCOUTFS_NOTIFY_NATS_H_
#define _SCOUTFS_NOTIFY_NATS_H_

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <nats/nats.h>

#define NN_SUBJECT_PREFIX	"scoutfs.notify"
#define NN_DEFAULT_STREAM	"SCOUTFS_NOTIFY"
#define NN_DEFAULT_SERVER	"nats://127.0.0.1:4222"
#define NN_MAX_SERVERS		32
#define NN_TOKEN_MAX		64

/* exit statuses, as scoutfs-notifyd's */
#define NN_EXIT_TRANSIENT	1
#define NN_EXIT_USAGE		2
#define NN_EXIT_PERMANENT	3
#define NN_EXIT_GONE		4

struct nn_opts {
	const char *servers[NN_MAX_SERVERS];
	int nservers;
	const char *creds;
	const char *user;
	const char *password_file;
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	const char *name;	/* the connection's name, shown by the server */
	char *password;		/* read from $NATS_PASSWORD or password_file */
	char *urls_buf[NN_MAX_SERVERS];
	int nbufs;
};

/* the options' help text, for --help */
#define NN_OPTS_HELP \
	"  -s, --server URL       NATS server, nats://HOST:PORT or tls://HOST:PORT;\n" \
	"                         repeat or separate with commas for a cluster\n" \
	"                         (default " NN_DEFAULT_SERVER ")\n" \
	"      --creds FILE       NATS credentials file (JWT and NKey seed)\n" \
	"      --user NAME        user name; the password comes from $NATS_PASSWORD\n" \
	"                         or --password-file\n" \
	"      --password-file F  the first line of F is the password\n" \
	"      --tls-ca FILE      require TLS, trusting the CA certificates in FILE\n" \
	"      --tls-cert FILE    client certificate (with --tls-key)\n" \
	"      --tls-key FILE     its private key\n"

/* long options 1000.. are theirs; nn_opt() handles them */
#define NN_LONG_OPTS \
	{ "server", required_argument, NULL, 's' }, \
	{ "creds", required_argument, NULL, 1000 }, \
	{ "user", required_argument, NULL, 1001 }, \
	{ "password-file", required_argument, NULL, 1002 }, \
	{ "tls-ca", required_argument, NULL, 1003 }, \
	{ "tls-cert", required_argument, NULL, 1004 }, \
	{ "tls-key", required_argument, NULL, 1005 }

/*
 * Take option c (its argument arg) if it is one of ours: 1 taken, 0 not
 * ours, -1 bad (the reason is printed, prefixed by prog).
 */
int nn_opt(struct nn_opts *o, int c, const char *arg, const char *prog);

/*
 * The command line's options: ours taken by nn_opt(), --help (-h)
 * printing usage on stdout, every other option given to take(), which
 * prints why it refuses one (usage included, for an unknown one).
 * Returns -1 when every option was taken, or the exit status: 0 after
 * --help, NN_EXIT_USAGE for an option refused.
 */
int nn_parse_opts(struct nn_opts *o, int argc, char **argv, const char *shortopts,
		  const struct option *longopts, int (*take)(int c, const char *arg),
		  void (*usage)(FILE *f), const char *prog);

/* block SIGTERM, SIGINT and sig, for sigtimedwait() on *set */
void nn_block_signals(sigset_t *set, int sig);

/* after the options: defaults, the password, files readable; 0 or -1 (printed) */
int nn_check(struct nn_opts *o, const char *prog);

/*
 * Connect.  reconnect: keep reconnecting for ever once connected
 * (disconnected/reconnected callbacks may be given, with closure).
 * Returns 0, or an exit status with the reason printed.
 */
int nn_connect(natsConnection **nc, struct nn_opts *o, bool reconnect,
	       natsConnectionHandler disconnected, natsConnectionHandler reconnected,
	       void *closure, const char *prog);

/* is s a valid subject token of our own making: [A-Za-z0-9_-], 1..NN_TOKEN_MAX */
bool nn_token_ok(const char *s);

void nn_free(struct nn_opts *o);

/* a JetStream message's stream position (0 if it has none), and when it was stored */
uint64_t nn_msg_seq(natsMsg *m, int64_t *stored_ns);

/*
 * natsSubscription_Fetch() of up to batch messages, waiting up to
 * wait_ms, around a heap overflow of libnats before 3.9.0 (nats.c #749,
 * Debian bookworm has 3.4.1): see notify-nats.c.  A list of more than
 * batch messages is that overflow after all: nn_fetch() then says so
 * and exits the process (NN_EXIT_TRANSIENT) at once, the heap may be
 * corrupt; NATS delivers the messages again to the next run.
 */
natsStatus nn_fetch(natsMsgList *list, natsSubscription *sub, int batch, int64_t wait_ms,
		    jsErrCode *jerr, const char *prog);

#endif
