/*
 * The socket protocol of scoutfs-notifyd (docs/interface.md, "Socket
 * protocol", and scoutfs-notifyd(8)), for the daemon and its clients.
 *
 * A client that sends nothing gets one 64 byte record per message, as
 * every client always has.  A client may instead send one request, as
 * its first and only message, for up to max_recs records per message.
 * The daemon answers it with a reply (granted, or refused with a reason
 * and the connection closed); from the reply on a message holds 1 to
 * the granted number of records, back to back.  The ATTACH record the
 * daemon sends as it accepts a client, and any record relayed before it
 * read the request, come as messages of one record before the reply.
 *
 * Every integer is native endian, like the records.  The request is
 * 16 bytes:
 *	0  4 magic	"SNRQ"
 *	4  2 version	1
 *	6  2 flags	0
 *	8  4 max_recs	records per message the client takes, at least 1
 *	12 4 reserved	0
 * the reply NS_REPLY_LEN (112) bytes, a size no message of records has:
 *	0  4 magic	"SNRP"
 *	4  2 version	1
 *	6  2 status	0 granted, 1 refused
 *	8  4 max_recs	granted: records per message from now on (at most
 *			the request's and NS_MAX_RECS); refused: 0
 *	12 4 reserved	0
 *	16 96 reason	refused: why, NUL terminated; granted: zeros
 */
#ifndef _SCOUTFS_NOTIFY_SOCK_H_
#define _SCOUTFS_NOTIFY_SOCK_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#ifndef U64_MAX
#define U64_MAX UINT64_MAX
#endif
#include "ioctl.h"

#define NS_REC_LEN		64
#define NS_REQ_LEN		16
#define NS_REPLY_LEN		112
#define NS_REASON_LEN		96
#define NS_VERSION		1
#define NS_STATUS_GRANTED	0
#define NS_STATUS_REFUSED	1
/* records per message the daemon sends at most */
#define NS_MAX_RECS		256

typedef struct scoutfs_ioctl_notify_record ns_rec_t;

/* the request for up to max_recs records per message, NS_REQ_LEN bytes */
void ns_request(unsigned char buf[NS_REQ_LEN], uint32_t max_recs);

/*
 * What a client sent, len bytes of buf: 0 and *granted (the records
 * per message it gets) for a good request, or -1 and why it is not
 * one in why (NUL terminated, at most whylen bytes).
 */
int ns_parse_request(const void *buf, size_t len, uint32_t *granted, char *why, size_t whylen);

/* the reply: granted max_recs (reason NULL), or refused with reason */
void ns_reply(unsigned char buf[NS_REPLY_LEN], uint32_t max_recs, const char *reason);

/*
 * A message from the daemon, len bytes of buf: 1 for a reply granting
 * *granted records per message, 0 if it is no reply (a message of
 * records, or a bad one), -1 for a refusal (its reason in why, in
 * printable ASCII, anything else as '?') or a malformed reply (any
 * field not as above: a grant out of range or with a reason, a refusal
 * that grants records, ...).
 */
int ns_parse_reply(const void *buf, size_t len, uint32_t *granted, char *why, size_t whylen);

/* a client's connection: ns_connect(), ns_recv(), ns_close() */
#define NS_RECV_MSGS		16
#define NS_RECV_RECS		(NS_RECV_MSGS * NS_MAX_RECS)

struct ns_conn {
	int fd;
	const char *path;
	const char *prog;	/* for messages on stderr */
	uint32_t want;		/* records per message asked for; 1: no request */
	uint32_t max;		/* records a message may hold now */
	bool replied;
	bool fell_back;		/* reconnected without a request */
	uint64_t msgs;		/* record messages received */
	uint64_t recs;		/* records received on this connection */
	uint64_t attach_seq;	/* the first message's ATTACH, 0: none */
	unsigned char *buf;	/* NS_RECV_MSGS messages of NS_MAX_RECS records, and a byte */
	char err[256];
};

/*
 * Connect to the daemon's socket at path and, when want > 1, ask for up
 * to want records per message.  0, or -1 with errno and c->err set.
 */
int ns_connect(struct ns_conn *c, const char *path, uint32_t want, const char *prog);

/*
 * The records of the messages waiting, up to NS_RECV_MSGS messages,
 * into recs (room for NS_RECV_RECS): waits for the first one unless
 * nonblocking.  Returns the number of records: 0 when nothing was
 * waiting, a signal interrupted the wait, or the messages were no
 * records (each reported on stderr and skipped); or -1, with *eof set
 * when the daemon closed the connection, otherwise with an error in
 * c->err.  A refused request is an error, and so are a reply nobody
 * asked for and one granting more than asked.  A daemon that closes the
 * connection without answering a request, after at most its ATTACH
 * (one from before requests existed), is connected to again once
 * without a request, and that ATTACH is not returned twice.
 */
long ns_recv(struct ns_conn *c, ns_rec_t *recs, bool nonblocking, bool *eof);

void ns_close(struct ns_conn *c);

/*
 * Tell systemd (Type=notify) about our state, if it is listening: 0,
 * or -1 with errno when the datagram could not be sent.
 */
int ns_sd_notify(const char *msg);

/* syslog's priorities, which start each logged line for journald */
#define LOG_ERR		3
#define LOG_WARNING	4
#define LOG_INFO	6

/* one line on stderr, "<prio>prog: " and the message: what a service logs */
void ns_log(const char *prog, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
