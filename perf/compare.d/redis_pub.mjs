// XADD load at a fixed offered rate for perf/compare's latency chart
// (redis-benchmark has no fixed-rate mode): C connections, each sending a
// batch of B pipelined `XADD s * f <payload>` on a fixed schedule and waiting
// for all B replies; each reply's latency is timed from its batch's intended
// send time (no coordinated omission). Same output as nats_pub.mjs.
import net from "node:net";
import { Latencies, parseArgs, printReport, runProducers } from "./fixed_rate.mjs";

const opts = parseArgs("127.0.0.1:6379");
const { size, conc, batch } = opts;
const [host, port] = opts.server.split(":");

const body = "x".repeat(size);
const cmd = Buffer.from(`*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nf\r\n$${size}\r\n${body}\r\n`);
const batchBuf = Buffer.concat(Array.from({ length: batch }, () => cmd));

const latencies = new Latencies();
let errors = 0;

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
      latencies.record(waiting.start);
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
const { seconds, cpu, cpuSeconds } = await runProducers(opts, (p, start) => conns[p].send(start));
for (const c of conns) c.sock.end();
const records = latencies.n - errors;
printReport({ records, errors, seconds, cpu, cpuSeconds, size, latencies });
