// JetStream publisher for perf/compare: C producers, each with one batch of B
// publishes in flight (B publishes with reply subjects, then wait for every PubAck), on one
// connection, for a fixed duration; or, with --rate, on a fixed schedule
// (latency timed from each batch's intended send time: no coordinated omission).
// Prints one JSON object: records/s, MB/s, ack latency percentiles (µs), the
// client's own CPU.
import { connect, StorageType, RetentionPolicy, DiscardPolicy } from "nats";
import { Latencies, parseArgs, printReport, runProducers } from "./fixed_rate.mjs";

const opts = parseArgs("127.0.0.1:4222");
const { server, size, batch } = opts;

const nc = await connect({ servers: server, maxPingOut: 100, pingInterval: 60000 });
const jsm = await nc.jetstreamManager();
try { await jsm.streams.delete("bench"); } catch { /* absent */ }
await jsm.streams.add({
  name: "bench", subjects: ["bench.s"], storage: StorageType.File,
  retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old, num_replicas: 1,
});
// Publishes go out as core NATS messages with a reply subject of their own,
// which is what js.publish() does, minus a promise and a JSON decode per
// message: the PubAck (JSON; "error" in it on failure) comes back on that subject.
const inbox = `_INBOX.bench.${process.pid}`;
const pending = new Map();
let nextId = 0;
const dec = new TextDecoder();
nc.subscribe(`${inbox}.*`, {
  callback: (err, m) => {
    const id = Number(m.subject.slice(inbox.length + 1));
    const done = pending.get(id);
    if (!done) return;
    pending.delete(id);
    done(err || dec.decode(m.data).includes("\"error\""));
  },
});
const publish = () => new Promise((resolve) => {
  const id = nextId++;
  pending.set(id, resolve);
  nc.publish("bench.s", payload, { reply: `${inbox}.${id}` });
});
const payload = new Uint8Array(size);
for (let i = 0; i < size; i++) payload[i] = 97 + (i % 26);

const latencies = new Latencies();
let errors = 0;
const { seconds, cpu, cpuSeconds } = await runProducers(opts, async (p, start) => {
  const acks = [];
  for (let i = 0; i < batch; i++) {
    acks.push(publish().then((failed) => { if (failed) errors++; else latencies.record(start); }));
  }
  await Promise.all(acks);
});
await nc.drain();
printReport({ records: latencies.n, errors, seconds, cpu, cpuSeconds, size, latencies });
