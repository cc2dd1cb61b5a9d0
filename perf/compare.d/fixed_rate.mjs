// Shared by perf/compare's Node load generators (redis_pub.mjs, nats_pub.mjs):
// their arguments, the latency record, the producers' schedule and the one
// JSON line they print.
import { performance } from "node:perf_hooks";

// --server --record-size --producers --batch-records --duration --rate
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
  };
}

// Ack latencies in ms, in a growing typed array (no per-record objects).
export class Latencies {
  constructor() { this.lat = new Float64Array(1 << 20); this.n = 0; }
  push(ms) {
    if (this.n === this.lat.length) { const grown = new Float64Array(this.lat.length * 2); grown.set(this.lat); this.lat = grown; }
    this.lat[this.n++] = ms;
  }
  percentileUs(q) {
    if (!this.sorted) this.sorted = this.lat.subarray(0, this.n).sort();
    return this.n ? this.sorted[Math.min(this.n - 1, Math.ceil(q * this.n) - 1)] * 1000 : 0;
  }
}

// Runs `conc` producers for `duration` s; each calls `sendBatch(p, start)` and
// waits for it. Under --rate, producer p sends batch k at t0 + (k·conc + p)·interval
// and `start` is that intended time (no coordinated omission); a producer
// behind schedule at the end stops. Returns the seconds and CPU it took.
export async function runProducers({ conc, batch, duration, rate }, sendBatch) {
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
      await sendBatch(p, start);
    }
  }
  await Promise.all(Array.from({ length: conc }, (_, p) => producer(p)));
  return { seconds: (performance.now() - t0) / 1000, cpu: process.cpuUsage(cpu0) };
}

// The line perf/compare's collect.mjs reads.
export function printReport({ records, errors, seconds, cpu, size, latencies }) {
  console.log(JSON.stringify({
    records, errors, seconds,
    records_per_s: records / seconds, mb_per_s: (records * size) / seconds / 1e6,
    p50_us: latencies.percentileUs(0.5), p99_us: latencies.percentileUs(0.99), p999_us: latencies.percentileUs(0.999),
    client_cpu_pct: (100 * (cpu.user + cpu.system) / 1e6) / seconds,
  }));
}
