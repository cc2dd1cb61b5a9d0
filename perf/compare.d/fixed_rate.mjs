// Shared by perf/compare's Node load generators (redis_pub.mjs, nats_pub.mjs):
// their arguments, the latency record, the producers' schedule and the one
// JSON line they print.
import { performance } from "node:perf_hooks";

// --server --record-size --producers --batch-records --duration --rate --warmup
export function parseArgs(defaultServer) {
  const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []));
  return {
    server: args.server ?? defaultServer,
    size: Number(args["record-size"] ?? 1024),
    conc: Number(args.producers ?? 1),
    batch: Number(args["batch-records"] ?? 100),
    duration: Number(args.duration ?? 5),
    rate: Number(args.rate ?? 0),
    warmup: Number(args.warmup ?? 0),
  };
}

// When the warm-up is over (set by runProducers): batches due before it are not counted.
let measureFrom = 0;

// Ack latencies in ms, in a growing typed array (no per-record objects).
export class Latencies {
  constructor() { this.lat = new Float64Array(1 << 20); this.n = 0; }
  // An ack now of a record whose batch was due at `start` (performance.now() ms).
  record(start) {
    if (start >= measureFrom) this.push(performance.now() - start);
  }
  push(ms) {
    if (this.n === this.lat.length) { const grown = new Float64Array(this.lat.length * 2); grown.set(this.lat); this.lat = grown; }
    this.lat[this.n++] = ms;
  }
  percentileUs(q) {
    if (!this.sorted) this.sorted = this.lat.subarray(0, this.n).sort();
    return this.n ? this.sorted[Math.min(this.n - 1, Math.ceil(q * this.n) - 1)] * 1000 : 0;
  }
}

// Runs `conc` producers for `warmup` + `duration` s; each calls `sendBatch(p, start)` and
// waits for it. Under --rate, producer p sends batch k at t0 + (k·conc + p)·interval
// and `start` is that intended time (no coordinated omission); a producer
// behind schedule at the end stops. Batches due in the warm-up are sent but
// not counted (Latencies.record). Returns the measured seconds, and the CPU
// and wall seconds of the whole run (the load is the same throughout).
export async function runProducers({ conc, batch, duration, rate, warmup }, sendBatch) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  measureFrom = t0 + warmup * 1000;
  const end = measureFrom + duration * 1000;
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
      await sendBatch(p, start);
    }
  }
  await Promise.all(Array.from({ length: conc }, (_, p) => producer(p)));
  const t1 = performance.now();
  return { seconds: (t1 - measureFrom) / 1000, cpu: process.cpuUsage(cpu0), cpuSeconds: (t1 - t0) / 1000 };
}

// The line perf/compare's collect.mjs reads.
export function printReport({ records, errors, seconds, cpu, cpuSeconds, size, latencies }) {
  console.log(JSON.stringify({
    records, errors, seconds,
    records_per_s: records / seconds, mb_per_s: (records * size) / seconds / 1e6,
    p50_us: latencies.percentileUs(0.5), p99_us: latencies.percentileUs(0.99), p999_us: latencies.percentileUs(0.999),
    client_cpu_pct: (100 * (cpu.user + cpu.system) / 1e6) / cpuSeconds,
  }));
}
