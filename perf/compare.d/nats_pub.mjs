// JetStream publisher for perf/compare: C producers, each with one batch of B
// publishes in flight (B publishes with reply subjects, then wait for every PubAck), on one
// connection, for a fixed duration; or, with --rate, on a fixed schedule
// (latency timed from each batch's intended send time: no coordinated omission).
// Prints one JSON object: records/s, MB/s, ack latency percentiles (µs), the
// client's own CPU.
import { connect, StorageType, RetentionPolicy, DiscardPolicy } from "nats";
import { performance } from "node:perf_hooks";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []));
const server = args.server ?? "127.0.0.1:4222";
const size = Number(args["record-size"] ?? 1024);
const conc = Number(args.producers ?? 1);
const batch = Number(args["batch-records"] ?? 100);
const duration = Number(args.duration ?? 5);
const rate = Number(args.rate ?? 0);

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

let lat = new Float64Array(1 << 20);
let nlat = 0;
const push = (ms) => {
  if (nlat === lat.length) { const n = new Float64Array(lat.length * 2); n.set(lat); lat = n; }
  lat[nlat++] = ms;
};
let errors = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const end = t0 + duration * 1000;
// Under --rate, producer p sends batch k at t0 + (k * conc + p) * interval.
const interval = rate > 0 ? (batch * 1000) / rate : 0;

async function producer(p) {
  for (let k = 0; ; k++) {
    let start = performance.now();
    if (rate > 0) {
      const due = t0 + (k * conc + p) * interval;
      if (due >= end || start >= end) return;   // behind schedule at the end: stop
      if (due > start) await new Promise((r) => setTimeout(r, due - start));
      start = due;
    } else if (start >= end) return;
    const acks = [];
    for (let i = 0; i < batch; i++) {
      acks.push(publish().then((failed) => { if (failed) errors++; else push(performance.now() - start); }));
    }
    await Promise.all(acks);
  }
}
await Promise.all(Array.from({ length: conc }, (_, p) => producer(p)));
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
await nc.drain();

const sorted = lat.subarray(0, nlat).sort();
const pct = (q) => (nlat ? sorted[Math.min(nlat - 1, Math.ceil(q * nlat) - 1)] * 1000 : 0);
console.log(JSON.stringify({
  records: nlat, errors, seconds,
  records_per_s: nlat / seconds, mb_per_s: (nlat * size) / seconds / 1e6,
  p50_us: pct(0.5), p99_us: pct(0.99), p999_us: pct(0.999),
  client_cpu_pct: (100 * (cpu.user + cpu.system) / 1e6) / seconds,
}));
