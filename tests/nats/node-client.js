// The official Node.js NATS client (npm "nats" 2.x) against the stream,
// as a user of another language would use it: the client's standard
// JetStream calls, each a line "ok NAME<tab>detail" or "fail
// NAME<tab>why", then "done".  Run by tests/nats/nats_test.py (t_node_client) with
// NODE_PATH at an `npm install nats@2`.
//
//   node node-client.js URL USER PASSWORD STREAM MSGS MODE
//
// MODE "push": an ordered push consumer over all MSGS messages (more
// than flow control lets it take without replying).  MODE "read": what a reader does, which must all work (jetstreamManager,
// stream info, names, list and message get, consumers ordered, durable
// pull with fetch and consume, the older pullSubscribe/fetch and the
// ordered push subscription, consumer info, list, delete).  MODE
// "write": what a reader must not do, each of which must be refused
// (publishing on $SUBJECT, JetStream or plain, creating, updating,
// purging or deleting a stream, deleting a message).  MODE "admin": the
// same calls as an admin, on a scratch stream STREAM of subject
// $SUBJECT that it makes, which must work (so that a refusal can fail).
"use strict";

const { connect, AckPolicy, DeliverPolicy, consumerOpts, StringCodec } = require("nats");

const [url, user, pass, stream, msgsArg, mode] = process.argv.slice(2);
const msgs = Number(msgsArg);
const sc = StringCodec();

function say(ok, name, detail) {
	console.log(`${ok ? "ok" : "fail"} ${name}\t${String(detail).replace(/\s+/g, " ")}`);
}

async function step(name, fn) {
	try {
		say(true, name, await fn());
	} catch (e) {
		say(false, name, `${e.code || ""} ${e.message}`.trim());
	}
}

// a call that must be refused by the server's permissions
async function refused(name, fn) {
	try {
		await fn();
		say(false, name, "it was allowed");
	} catch (e) {
		const why = `${e.code || ""} ${e.message}`.trim();
		const perm = /permission/i.test(why);
		say(perm, name, perm ? `refused: ${why}` : `failed, but not for permissions: ${why}`);
	}
}

// stream seqs of what a consumer hands out, in the order it does
async function fetchAll(c, n) {
	const seqs = [];
	while (seqs.length < n) {
		const it = await c.fetch({ max_messages: n - seqs.length, expires: 5000 });
		let got = 0;
		for await (const m of it) {
			seqs.push(m.seq);
			got++;
		}
		if (!got)
			break;
	}
	return seqs;
}

function inOrder(seqs) {
	return seqs.length === msgs && seqs.every((s, i) => s === i + 1);
}

async function read(nc) {
	const jsm = await nc.jetstreamManager();
	say(true, "jetstreamManager()", "the manager (it asks $JS.API.INFO first)");
	const js = nc.jetstream();

	await step("jsm.getAccountInfo()", async () => `${(await jsm.getAccountInfo()).streams} streams`);
	await step("jsm.streams.info()", async () => {
		const si = await jsm.streams.info(stream);
		if (si.state.messages !== msgs)
			throw new Error(`${si.state.messages} messages, ${msgs} wanted`);
		return `${si.state.messages} messages`;
	});
	await step("jsm.streams.names()", async () => {
		const names = [];
		for await (const n of jsm.streams.names())
			names.push(n);
		if (!names.includes(stream))
			throw new Error(`names ${names}`);
		return names.join(",");
	});
	await step("jsm.streams.list()", async () => {
		const all = [];
		for await (const si of jsm.streams.list())
			all.push(si.config.name);
		if (!all.includes(stream))
			throw new Error(`list ${all}`);
		return all.join(",");
	});
	await step("jsm.streams.getMessage()", async () => {
		const m = await jsm.streams.getMessage(stream, { seq: 1 });
		const o = JSON.parse(sc.decode(m.data));
		if (o.schema !== 1)
			throw new Error(`not a record: ${sc.decode(m.data)}`);
		return `message 1 on ${m.subject}, op ${o.op}`;
	});
	await step("ordered consumer: js.consumers.get(stream).fetch()", async () => {
		const c = await js.consumers.get(stream);
		const seqs = await fetchAll(c, msgs);
		if (!inOrder(seqs))
			throw new Error(`seqs ${seqs.slice(0, 10)}... (${seqs.length})`);
		return `${seqs.length} messages in order`;
	});
	await step("ordered consumer: consume()", async () => {
		const c = await js.consumers.get(stream);
		const it = await c.consume();
		const seqs = [];
		for await (const m of it) {
			seqs.push(m.seq);
			if (seqs.length === msgs)
				break;
		}
		if (!inOrder(seqs))
			throw new Error(`seqs ${seqs.length}`);
		return `${seqs.length} messages in order`;
	});
	await step("durable: jsm.consumers.add()", async () => {
		const ci = await jsm.consumers.add(stream, {
			durable_name: "node_durable", ack_policy: AckPolicy.Explicit,
			deliver_policy: DeliverPolicy.All });
		return `consumer ${ci.name}`;
	});
	await step("durable: fetch() and ack", async () => {
		const c = await js.consumers.get(stream, "node_durable");
		const half = Math.floor(msgs / 2);
		const seqs = [];
		const it = await c.fetch({ max_messages: half, expires: 5000 });
		for await (const m of it) {
			seqs.push(m.seq);
			await m.ackAck();
		}
		if (seqs.length !== half)
			throw new Error(`${seqs.length} of ${half}`);
		return `${seqs.length} messages, each acknowledged`;
	});
	await step("durable: consume() carries on", async () => {
		const c = await js.consumers.get(stream, "node_durable");
		const it = await c.consume();
		const seqs = [];
		for await (const m of it) {
			seqs.push(m.seq);
			await m.ackAck();
			if (m.seq === msgs)
				break;
		}
		if (seqs[0] !== Math.floor(msgs / 2) + 1 || seqs.length !== msgs - Math.floor(msgs / 2))
			throw new Error(`from ${seqs[0]}, ${seqs.length} messages`);
		return `from ${seqs[0]} to ${seqs[seqs.length - 1]}`;
	});
	await step("durable: jsm.consumers.info()", async () => {
		const ci = await jsm.consumers.info(stream, "node_durable");
		if (ci.num_ack_pending !== 0 || ci.delivered.stream_seq !== msgs)
			throw new Error(`ack pending ${ci.num_ack_pending}, delivered ${ci.delivered.stream_seq}`);
		return `all ${msgs} delivered and acknowledged`;
	});
	await step("jsm.consumers.list()", async () => {
		const names = [];
		for await (const ci of jsm.consumers.list(stream))
			names.push(ci.name);
		if (!names.includes("node_durable"))
			throw new Error(`${names}`);
		return `${names.length} consumers`;
	});
	await step("jsm.consumers.delete()", async () => `${await jsm.consumers.delete(stream, "node_durable")}`);
	await step("older API: js.pullSubscribe() and pull()", async () => {
		const opts = consumerOpts().durable("node_pull").ackExplicit().deliverAll();
		const sub = await js.pullSubscribe("scoutfs.notify.>", opts);
		const seqs = [];
		const done = (async () => {
			for await (const m of sub) {
				seqs.push(m.seq);
				m.ack();
				if (seqs.length === msgs)
					break;
			}
		})();
		while (seqs.length < msgs) {
			const before = seqs.length;
			sub.pull({ batch: msgs, expires: 2000 });
			await new Promise((r) => setTimeout(r, 500));
			if (seqs.length === before && seqs.length < msgs)
				await new Promise((r) => setTimeout(r, 1500));
			if (seqs.length === before)
				break;
		}
		sub.unsubscribe();
		await done;
		await jsm.consumers.delete(stream, "node_pull");
		if (!inOrder(seqs))
			throw new Error(`${seqs.length} messages`);
		return `${seqs.length} messages in order`;
	});
	await step("older API: js.fetch()", async () => {
		await jsm.consumers.add(stream, { durable_name: "node_fetch", ack_policy: AckPolicy.Explicit,
			deliver_policy: DeliverPolicy.All });
		const seqs = [];
		for await (const m of js.fetch(stream, "node_fetch", { batch: msgs, expires: 5000 })) {
			seqs.push(m.seq);
			m.ack();
		}
		await jsm.consumers.delete(stream, "node_fetch");
		if (!inOrder(seqs))
			throw new Error(`${seqs.length} messages`);
		return `${seqs.length} messages in order`;
	});
	await step("older API: ordered push js.subscribe()", async () => {
		const opts = consumerOpts().orderedConsumer().deliverAll();
		const sub = await js.subscribe("scoutfs.notify.>", opts);
		const seqs = [];
		const timer = setTimeout(() => sub.unsubscribe(), 10000);
		for await (const m of sub) {
			seqs.push(m.seq);
			if (seqs.length === msgs)
				break;
		}
		clearTimeout(timer);
		sub.unsubscribe();
		if (!inOrder(seqs))
			throw new Error(`${seqs.length} messages`);
		return `${seqs.length} messages in order`;
	});
}

// more messages than a push consumer may take without flow control replies
async function push(nc) {
	const js = nc.jetstream();

	await step("ordered push over the whole stream", async () => {
		const sub = await js.subscribe("scoutfs.notify.>", consumerOpts().orderedConsumer().deliverAll());
		const timer = setTimeout(() => sub.unsubscribe(), 90000);
		let n = 0;
		let last = 0;
		for await (const m of sub) {
			n++;
			last = m.seq;
			if (n === msgs)
				break;
		}
		clearTimeout(timer);
		sub.unsubscribe();
		if (n !== msgs || last !== msgs)
			throw new Error(`${n} of ${msgs} messages, the last ${last}`);
		return `${n} messages`;
	});
}

// the calls a reader must not make, on stream target and subject; as
// admin (on a scratch stream) each of them must work instead
async function write(nc, target, subject) {
	const jsm = await nc.jetstreamManager();
	const js = nc.jetstream();
	const fresh = `NODE_NEW_${process.pid}`;

	if (mode === "admin")
		await jsm.streams.add({ name: target, subjects: [subject] });
	await refused("js.publish() on the stream's subjects", () =>
		js.publish(subject, sc.encode("{}"), { timeout: 5000 }));
	await refused("nc.request() (a plain publish) on the stream's subjects", () =>
		nc.request(subject, sc.encode("{}"), { timeout: 5000 }));
	await refused("jsm.streams.add()", () => jsm.streams.add({ name: fresh, subjects: [`${fresh}.>`] }));
	await refused("jsm.streams.update()", async () => {
		const si = await jsm.streams.info(target);
		return jsm.streams.update(target, { ...si.config, max_msgs: 1000000 });
	});
	await refused("jsm.streams.deleteMessage()", () => jsm.streams.deleteMessage(target, 1));
	await refused("jsm.streams.purge()", () => jsm.streams.purge(target, { keep: 1000000 }));
	await refused("jsm.streams.delete()", () => jsm.streams.delete(target));
	if (mode === "admin") {
		await jsm.streams.delete(fresh).catch(() => null);
		return;
	}
	const si = await jsm.streams.info(target).catch(() => null);
	say(si !== null && si.state.messages === msgs, "the stream is as it was",
	    si ? `${si.state.messages} messages` : "its info is refused");
}

(async () => {
	let nc;
	try {
		nc = await connect({ servers: url, user, pass, timeout: 10000 });
	} catch (e) {
		say(false, "connect", e.message);
		console.log("done");
		return;
	}
	say(true, "connect", `as ${user}`);
	try {
		if (mode === "read")
			await read(nc);
		else if (mode === "push")
			await push(nc);
		else
			await write(nc, stream, process.env.SUBJECT);
	} catch (e) {
		say(false, "the calls", `${e.code || ""} ${e.message}`);
	}
	await nc.drain().catch(() => nc.close());
	console.log("done");
})();
