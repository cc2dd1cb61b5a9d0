// XADD load at a fixed offered rate for perf/compare's latency chart
// (redis-benchmark has no fixed-rate mode): C connections, each sending a
// batch of B pipelined `XADD s * f <payload>` on a fixed schedule and waiting
// for all B replies; each reply's latency is timed from its batch's intended
// send time (no coordinated omission). Same output as nats_pub.mjs.
import net from "node:net";
import { performance } from "node:perf_hooks";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const [host, port] = (args.server ?? "127.0.0.1:6379").split(":");
const size = Number(args["record-size"] ?? 1024);
const conc = Number(args.producers ?? 1);
const batch = Number(args["batch-records"] ?? 100);
const duration = Number(args.duration ?? 5);
const rate = Number(args.rate ?? 0);

const body = "x".repeat(size);
const cmd = Buffer.from(`*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nf\r\n$${size}\r\n${body}\r\n`);
const batchBuf = Buffer.concat(Array.from({ length: batch }, () => cmd));

let lat = new Float64Array(1 << 20);
let nlat = 0;
let errors = 0;
const push = (ms) => {
  if (nlat === lat.length) { const n = new Float64Array(lat.length * 2); n.set(lat); lat = n; }
  lat[nlat++] = ms;
};

// Counts replies on one connection: `$N\r\n<id>\r\n` (an entry id) or `-ERR ...\r\n`.
function connection() {
  const sock = net.createConnection({ host, port: Number(port), noDelay: true });
  let buf = Buffer.alloc(0);
  let waiting = null;   // { left, start, resolve }
  sock.on("data", (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    let off = 0;
    for (;;) {
      const nl = buf.indexOf("\r\n", off);
      if (nl < 0) break;
      let next = nl + 2;
      if (buf[off] === 36 /* $ */) {
        const n = Number(buf.toString("latin1", off + 1, nl));
        if (n >= 0) {
          if (buf.length < next + n + 2) break;
          next += n + 2;
        }
      } else if (buf[off] === 45 /* - */) errors++;
      off = next;
      push(performance.now() - waiting.start);
      if (--waiting.left === 0) { const w = waiting; waiting = null; w.resolve(); }
    }
    buf = buf.subarray(off);
  });
  const ready = new Promise((r) => sock.once("connect", r));
  return {
    ready, sock,
    send: (start) => new Promise((resolve) => { waiting = { left: batch, start, resolve }; sock.write(batchBuf); }),
  };
}

const conns = Array.from({ length: conc }, connection);
await Promise.all(conns.map((c) => c.ready));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const end = t0 + duration * 1000;
const interval = rate > 0 ? (batch * 1000) / rate : 0;

async function producer(p) {
  for (let k = 0; ; k++) {
    let start = performance.now();
    if (rate > 0) {
      const due = t0 + (k * conc + p) * interval;
      if (due >= end || start >= end) return;
      if (due > start) await new Promise((r) => setTimeout(r, due - start));
      start = due;
    } else if (start >= end) return;
    await conns[p].send(start);
  }
}
await Promise.all(Array.from({ length: conc }, (_, p) => producer(p)));
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
for (const c of conns) c.sock.end();

const sorted = lat.subarray(0, nlat).sort();
const pct = (q) => (nlat ? sorted[Math.min(nlat - 1, Math.ceil(q * nlat) - 1)] * 1000 : 0);
console.log(JSON.stringify({
  records: nlat - errors, errors, seconds,
  records_per_s: (nlat - errors) / seconds, mb_per_s: ((nlat - errors) * size) / seconds / 1e6,
  p50_us: pct(0.5), p99_us: pct(0.99), p999_us: pct(0.999),
  client_cpu_pct: (100 * (cpu.user + cpu.system) / 1e6) / seconds,
}));
