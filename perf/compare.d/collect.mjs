// Turns one load generator's output into one JSON line for perf/compare.
//   node collect.mjs KIND RAW_FILE key=value...   (prints the line on stdout)
// KIND: runnel (runnel-bench --json), redis (redis-benchmark's full text
// output), json (nats_pub.mjs, redis_pub.mjs), fio (fio --output-format=json).
// Latencies come out in microseconds, percentages of one core.
import { readFileSync } from "node:fs";

const [kind, file, ...kv] = process.argv.slice(2);
const extra = Object.fromEntries(kv.map((s) => {
  const i = s.indexOf("=");
  const v = s.slice(i + 1);
  return [s.slice(0, i), v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v];
}));
const raw = readFileSync(file, "utf8");
let r;

if (kind === "runnel") {
  const j = JSON.parse(raw.trim().split("\n").filter((l) => l.startsWith("{")).pop());
  r = {
    records: j.produced, errors: j.errors, seconds: j.duration_s,
    records_per_s: j.append.records_per_s, mb_per_s: j.append.mb_per_s,
    p50_us: j.append.p50_us, p99_us: j.append.p99_us, p999_us: j.append.p999_us,
    client_cpu_pct: j.bench_cpu.percent_of_a_core,
  };
} else if (kind === "redis") {
  // "throughput summary: 39093.04 requests per second", then the summary's
  // p50 and p99; p99.9 from the percentile distribution: the first line at or
  // past 99.9% (an upper bound, never low).
  const text = raw.replace(/\r/g, "\n");
  const rps = Number(/throughput summary: ([\d.]+) requests per second/.exec(text)[1]);
  const pct = [];
  const dist = text.split("Latency by percentile distribution:")[1].split("Cumulative distribution")[0];
  for (const m of dist.matchAll(/([\d.]+)% <= ([\d.]+) milliseconds/g)) pct.push([Number(m[1]), Number(m[2])]);
  const at = (q) => (pct.find(([p]) => p >= q) ?? pct[pct.length - 1])[1] * 1000;
  r = {
    records: extra.requests, errors: 0, seconds: extra.requests / rps,
    records_per_s: rps, mb_per_s: (rps * extra.size) / 1e6,
    p50_us: at(50), p99_us: at(99), p999_us: at(99.9),
    client_cpu_pct: extra.client_cpu_pct,
  };
} else if (kind === "json") {   // nats_pub.mjs, redis_pub.mjs
  r = JSON.parse(raw.trim().split("\n").filter((l) => l.startsWith("{")).pop());
} else if (kind === "fio") {
  const j = JSON.parse(raw.slice(raw.indexOf("{")));
  const w = j.jobs[0].write.io_bytes > 0 ? j.jobs[0].write : j.jobs[0].read;
  const p = w.clat_ns.percentile ?? {};
  const get = (k) => (p[k] ?? 0) / 1000;
  r = {
    records: w.total_ios, errors: j.jobs[0].error, seconds: w.runtime / 1000,
    // per_record=N: writes/s as records of N bytes (fio next to a fixed record rate).
    records_per_s: extra.per_record ? w.bw_bytes / extra.per_record : w.iops, mb_per_s: w.bw_bytes / 1e6,
    p50_us: get("50.000000"), p99_us: get("99.000000"), p999_us: get("99.900000"),
    client_cpu_pct: j.jobs[0].usr_cpu + j.jobs[0].sys_cpu,
  };
} else {
  throw new Error(`unknown kind ${kind}`);
}
console.log(JSON.stringify({ ...extra, ...r, requests: undefined, per_record: undefined }));
