// perf/compare's table and charts: medians over the repetitions of each cell
// (each column's median on its own), printed as a Markdown table and written
// with the raw settings to OUT/compare-table.md; gnuplot charts to OUT/*.png.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";

const a = Object.fromEntries(process.argv.slice(2).reduce((acc, x, i, all) => {
  if (x.startsWith("--")) acc.push([x.slice(2), all[i + 1]]);
  return acc;
}, []));
const lines = (f) => readFileSync(f, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const runs = lines(a.runs);
const lat = a.latency ? lines(a.latency) : [];
const goalRuns = a.goals ? lines(a.goals) : [];
const out = a.out;
mkdirSync(out, { recursive: true });

const durable = {
  "runneld": "fsync per ack (O_DIRECT+RWF_DSYNC group commit)",
  "redis-always": "fsync per event-loop pass, before replies",
  "redis-everysec": "fsync once a second: ack not durable",
  "nats": "no fsync before ack (timer, 2 min): not durable",
  "fio 1m-qd16-noflush": "none: O_DIRECT, no flush",
  "fio 1m-qd1-dsync": "O_DSYNC on every write",
  "fio 1m-qd16-dsync": "O_DSYNC on every write",
  "fio 4k-qd1-dsync": "O_DSYNC on every write",
  "fio 4m-qd4-dsync": "O_DSYNC on every write",
  "fio 1m-qd8-read": "none: sequential O_DIRECT reads",
};
const short = {
  "runneld": "runneld (fsync per ack)", "redis-always": "redis always (fsync per loop pass)",
  "redis-everysec": "redis everysec (fsync 1/s)", "nats": "nats (no fsync before ack)",
};
const median = (xs) => {
  const s = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((p, q) => p - q);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const groups = new Map();
for (const r of runs) {
  const k = `${r.system}|${r.size}|${r.conc}`;
  if (!groups.has(k)) groups.set(k, []);
  groups.get(k).push(r);
}
const cells = [...groups.values()].map((rs) => ({
  system: rs[0].system, size: rs[0].size, conc: rs[0].conc, n: rs.length,
  errors: rs.reduce((s, r) => s + (r.errors || 0), 0),
  rps: median(rs.map((r) => r.records_per_s)), mbps: median(rs.map((r) => r.mb_per_s)),
  p50: median(rs.map((r) => r.p50_us)), p99: median(rs.map((r) => r.p99_us)),
  p999: median(rs.map((r) => r.p999_us)),
  scpu: median(rs.map((r) => r.server_cpu_pct)), ccpu: median(rs.map((r) => r.client_cpu_pct)),
  rpsMin: Math.min(...rs.map((r) => r.records_per_s)), rpsMax: Math.max(...rs.map((r) => r.records_per_s)),
}));

const fmtN = (x) => (Number.isNaN(x) ? "–" : x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e4 ? `${(x / 1e3).toFixed(0)} k` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0));
const fmtMs = (us) => (Number.isNaN(us) ? "–" : us >= 100e3 ? (us / 1e3).toFixed(0) : us >= 10e3 ? (us / 1e3).toFixed(1) : (us / 1e3).toFixed(2));
const fmtPct = (x) => (Number.isNaN(x) ? "–" : `${Math.round(x)}%`);
const fmtSize = (s) => (typeof s === "number" ? (s >= 1024 && s % 1024 === 0 ? `${s / 1024} KiB` : `${s} B`) : s.replace(/k$/, " KiB").replace(/m$/, " MiB"));

const rows = [
  "| system | durable ack means | record | producers (fio: queue depth) | records/s (fio: writes/s) | MB/s | ack p50 / p99 / p99.9 ms | server CPU | client CPU | runs (records/s min–max) |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
];
for (const c of cells) {
  rows.push(`| ${c.system} | ${durable[c.system] ?? ""} | ${fmtSize(c.size)} | ${c.conc} | ${fmtN(c.rps)} | ${c.mbps.toFixed(1)} | ` +
    `${fmtMs(c.p50)} / ${fmtMs(c.p99)} / ${fmtMs(c.p999)} | ${fmtPct(c.scpu)} | ${fmtPct(c.ccpu)} | ` +
    `${c.n}${c.n > 1 ? ` (${fmtN(c.rpsMin)}–${fmtN(c.rpsMax)})` : ""}${c.errors ? ` ERRORS ${c.errors}` : ""} |`);
}
const latRows = [];
if (lat.length) {
  const warm = Number(a.warmup ?? 0) > 0 ? `, after ${a.warmup} s of the same load that is not counted` : "";
  latRows.push("", `Ack latency at a fixed offered load (1 KiB records, ${lat[0].conc} producers, batches of ${a.batch}; one run each; timed from each batch's intended send time${warm}). ` +
    `fio rows: the disk alone at the same bytes/s, 256 KiB O_DSYNC writes with 4 in flight — no durable ack can come back sooner than its write:`, "",
    "| system | offered records/s | achieved records/s | ack p50 / p99 / p99.9 ms | server CPU | client CPU |", "| --- | --- | --- | --- | --- | --- |");
  for (const r of lat) {
    latRows.push(`| ${r.system} | ${fmtN(r.rate)} | ${fmtN(r.records_per_s)} | ${fmtMs(r.p50_us)} / ${fmtMs(r.p99_us)} / ${fmtMs(r.p999_us)} | ${fmtPct(r.server_cpu_pct)} | ${fmtPct(r.client_cpu_pct)} |`);
  }
}
const head = [
  `perf/compare, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, commit ${a.commit}, ` +
  `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}; each cell: median of ${a.reps} runs of ~${a.seconds} s, ` +
  `a fresh server and data dir per run; every producer keeps one batch of ${a.batch} records in flight; ` +
  `server and load generator share the machine. Server CPU: utime+stime of the server process over the run, ` +
  `in % of one core. fio rows: the disk under the scratch dir, no server.`,
  "",
];
// ---- the issue's goals, from this run ---------------------------------------
const goalRows = [];
if (goalRuns.length) {
  const of = (g) => goalRuns.filter((r) => r.goal === g);
  const med = (g, k) => median(of(g).map((r) => r[k]));
  const best = (system, size) => Math.max(...cells.filter((c) => c.system === system && c.size === size).map((c) => c.rps));
  const cell = (system) => cells.find((c) => c.system === system);
  const rn1k = best("runneld", 1024), rn100 = best("runneld", 100), redis1k = best("redis-always", 1024);
  const half = of("half")[0];
  const ackP99 = med("half", "ack_p99_us"), e2eP99 = med("half", "e2e_p99_us");
  const fioHalfP99 = med("fio_half", "p99_us");
  const engine = med("engine", "mb_per_s");
  const fioSame = cell("fio 4m-qd4-dsync"), fioRaw = cell("fio 1m-qd16-noflush");
  const yes = (ok) => (ok ? "**met**" : "not met");
  const row = (goal, target, got, ok) => goalRows.push(`| ${goal} | ${target} | ${got} | ${yes(ok)} |`);
  goalRows.push("", `Goals (runneld; medians of ${of("half").length || a.reps} runs each unless said; from this run only):`, "",
    "| goal | target | measured | |", "| --- | --- | --- | --- |");
  if (Number.isFinite(rn1k)) row("durable 1 KiB appends", "≥ 1,000,000 records/s", `${fmtN(rn1k)} records/s (best cell of the table)`, rn1k >= 1e6);
  if (Number.isFinite(redis1k) && Number.isFinite(rn1k)) row("… against Redis Streams appendfsync always", "≥ 5×", `${(rn1k / redis1k).toFixed(1)}× (${fmtN(redis1k)})`, rn1k >= 5 * redis1k);
  if (Number.isFinite(rn100)) row("durable 100 B appends", "≥ 3,000,000 records/s", `${fmtN(rn100)} records/s`, rn100 >= 3e6);
  if (half) {
    row(`ack p99 at half the 1 KiB maximum (${fmtN(half.rate)} of ${fmtN(half.max_rate)} records/s, ${half.conc ?? 16} producers as in the maximum's cell, one subscriber)`, "≤ 2 ms",
      `${fmtMs(ackP99)} ms (p50 ${fmtMs(med("half", "ack_p50_us"))})` +
      (of("fio_half").length ? `; fio alone at the same bytes/s (256 KiB O_DSYNC writes, 4 in flight; it wrote ` +
        `${Math.round(med("fio_half", "mb_per_s"))} of ${Math.round((half.rate * 1024) / 1e6)} MB/s): p50 ${fmtMs(med("fio_half", "p50_us"))}, ` +
        `p99 ${fmtMs(fioHalfP99)} ms, so the disk allows no less than that` : "") +
      (cell("fio 4k-qd1-dsync") ? `; one 4 KiB O_DSYNC write on an idle disk: p99 ${fmtMs(cell("fio 4k-qd1-dsync").p99)} ms` : ""),
      ackP99 <= 2000);
    row("end-to-end (append → subscriber) p99, same runs", "≤ ack p99 + 1 ms", `${fmtMs(e2eP99)} ms (+${fmtMs(e2eP99 - ackP99)})`,
      e2eP99 <= ackP99 + 1000);
  }
  const fioRead = cell("fio 1m-qd8-read");
  for (const [kind, what] of [["catchup1", "one subscriber, its stream written by 4 producers"], ["catchup", "8 streams, 4 consumers"]]) {
    const cu = med(kind, "mb_per_s");
    if (Number.isNaN(cu)) continue;
    row(`catch-up reads from seq_num 0 (${what})`, "≥ 1.5 GB/s",
      `${(cu / 1000).toFixed(2)} GB/s (runs ${of(kind).map((r) => Math.round(r.mb_per_s)).join(", ")} MB/s)` +
      (fioRead ? `; ${Math.round((100 * cu) / fioRead.mbps)}% of fio's sequential read, 1 MiB × 8 in flight: ${Math.round(fioRead.mbps)} MB/s` : ""),
      cu >= 1500);
  }
  const pairs = of("engine").map((e) => [e, of("fio").find((f) => f.rep === e.rep)]).filter(([, f]) => f);
  if (pairs.length) {
    // fio ran right before each engine run: the ratio is taken per pair.
    const ratio = median(pairs.map(([e, f]) => e.mb_per_s / f.mb_per_s));
    row("storage engine alone vs fio run just before it, same write size and depth (4 MiB O_DSYNC, 4 in flight)", "≥ 85%",
      `${Math.round(100 * ratio)}% (median of ${pairs.length} pairs: ` +
      pairs.map(([e, f]) => `${Math.round(e.mb_per_s)} / ${Math.round(f.mb_per_s)} MB/s`).join(", ") + ")",
      ratio >= 0.85);
  } else if (!Number.isNaN(engine) && fioSame) {
    row("storage engine alone vs fio, same write size and depth (4 MiB O_DSYNC, 4 in flight)", "≥ 85%",
      `${Math.round(engine)} MB/s = ${Math.round((100 * engine) / fioSame.mbps)}% of ${Math.round(fioSame.mbps)} MB/s` +
      (fioRaw ? ` (${Math.round((100 * engine) / fioRaw.mbps)}% of 1 MiB × 16 without flushes, ${Math.round(fioRaw.mbps)} MB/s)` : ""),
      engine >= 0.85 * fioSame.mbps);
  }
  const broken = goalRuns.filter((r) => r.goal !== "engine" && !r.goal.startsWith("fio") && (r.exactly_once === false || r.errors));
  if (broken.length) goalRows.push("", `WARNING: ${broken.length} goal runs reported errors or records not read exactly once.`);
}

const text = [...head, ...rows, ...latRows, ...goalRows, ""].join("\n");
process.stdout.write(text);
writeFileSync(`${out}/compare-table.md`, text);

// ---- charts --------------------------------------------------------------
const systems = [...new Set(cells.filter((c) => !c.system.startsWith("fio")).map((c) => c.system))];
const sizes = [...new Set(cells.filter((c) => !c.system.startsWith("fio")).map((c) => c.size))];
const tmp = a.scratch ?? "/tmp";
const gp = [];
const q = (s) => `"${s}"`;
for (const size of sizes) {
  const plots = [];
  for (const s of systems) {
    const f = `${tmp}/tp-${s}-${size}.dat`;
    const pts = cells.filter((c) => c.system === s && c.size === size).sort((x, y) => x.conc - y.conc);
    writeFileSync(f, pts.map((c) => `${c.conc} ${c.rps}`).join("\n") + "\n");
    plots.push(`${q(f)} using 1:2 with linespoints lw 2 pt 7 title ${q(short[s] ?? s)}`);
  }
  for (const c of cells.filter((x) => x.system.startsWith("fio 1m"))) {
    plots.push(`${(c.mbps * 1e6) / size} with lines dashtype 2 lw 1 title ${q(`${c.system}: ${c.mbps.toFixed(0)} MB/s as ${fmtSize(size)} records`)}`);
  }
  gp.push(`set terminal pngcairo size 1250,600 font ",10" noenhanced`,
    `set output ${q(`${out}/compare-throughput-${size}.png`)}`,
    `set title ${q(`records/s by concurrency, ${fmtSize(size)} records, batches of ${a.batch} (commit ${a.commit})`)}`,
    `set logscale xy`, `set xlabel "producers, each with one batch in flight"`, `set ylabel "records/s (median)"`,
    `set xrange [0.8:320]`, `set xtics (1, 4, 16, 64, 256)`, `set key outside right top vertical`, `set grid`,
    `plot ${plots.join(", ")}`, `unset logscale`, `set autoscale x`, `set xtics autofreq`);
}
if (lat.length) {
  const plots = [];
  const ls = { p50_us: "dashtype 1", p99_us: "dashtype 2", p999_us: "dashtype 3" };
  const names = { p50_us: "p50", p99_us: "p99", p999_us: "p99.9" };
  const lsys = [...new Set(lat.map((r) => r.system))];
  lsys.forEach((s, i) => {
    const f = `${tmp}/lat-${s}.dat`;
    const pts = lat.filter((r) => r.system === s).sort((x, y) => x.rate - y.rate);
    writeFileSync(f, pts.map((r) => `${r.rate} ${r.p50_us / 1000} ${r.p99_us / 1000} ${r.p999_us / 1000}`).join("\n") + "\n");
    ["p50_us", "p99_us", "p999_us"].forEach((p, j) => {
      plots.push(`${q(f)} using 1:${j + 2} with linespoints lw 2 lc ${i + 1} ${ls[p]} pt ${7 + j} title ${q(`${s} ${names[p]}`)}`);
    });
  });
  gp.push(`set terminal pngcairo size 1250,600 font ",10" noenhanced`,
    `set output ${q(`${out}/compare-latency.png`)}`,
    `set title ${q(`ack latency by offered load, 1 KiB records, ${lat[0].conc} producers (commit ${a.commit})`)}`,
    `set logscale xy`, `set xlabel "offered records/s"`, `set ylabel "ack latency, ms"`,
    `set key outside right top vertical`, `set grid`, `plot ${plots.join(", ")}`);
}
writeFileSync(`${tmp}/charts.gp`, gp.join("\n") + "\n");
execFileSync("gnuplot", [`${tmp}/charts.gp`], { stdio: "inherit" });
console.error(`[compare] wrote ${out}/compare-table.md and the charts`);
