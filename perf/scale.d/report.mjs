// perf/scale's table and charts: one Markdown table per curve (stdout and
// OUT/scale-table.md) and a gnuplot PNG per curve in OUT.
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { cpus, tmpdir } from "node:os";

const a = Object.fromEntries(process.argv.slice(2).reduce((acc, x, i, all) => {
  if (x.startsWith("--")) acc.push([x.slice(2), all[i + 1]]);
  return acc;
}, []));
const points = readFileSync(a.points, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const out = a.out;
const of = (curve) => points.filter((p) => p.curve === curve).sort((p, q) => p.x - q.x);

const fmtN = (x) => (x === undefined || Number.isNaN(x) ? "–" : x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e4 ? `${(x / 1e3).toFixed(0)} k` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : `${Math.round(x)}`);
const ms = (us) => (us === undefined ? "–" : (us / 1e3).toFixed(us >= 10e3 ? 1 : 2));
const ok = (p) => (p.exactly_once === false || p.errors ? ` (errors ${p.errors})` : "");

const text = [
  `perf/scale, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, commit ${a.commit}, ` +
  `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}; one run of ~${a.seconds} s per point against a fresh ` +
  `runneld; the load generator (runnel-bench) on the same machine. Memory: runneld's VmRSS.`, ""];

const streams = of("streams");
if (streams.length) {
  text.push("Streams on one shard (`--shards 1`), 16 producers, 1 KiB × 100-record batches round-robin over the streams:", "",
    "| streams | created/s | records/s | MB/s | ack p50 / p99 ms | runneld RSS before → after (peak) MiB | RSS per stream | SIGTERM to exit, s |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |");
  const base = streams[0].rss_mib;
  for (const p of streams) {
    // Per stream only where the streams' share stands out of the noise.
    const per = p.x >= 10000 ? `${(((p.rss_mib - base) * 1048576) / p.x).toFixed(0)} B` : "–";
    text.push(`| ${fmtN(p.x)} | ${p.create_s > 0 ? fmtN(p.x / p.create_s) : "–"} | ${fmtN(p.records_per_s)}${ok(p)} | ` +
      `${p.mb_per_s?.toFixed(1)} | ${ms(p.p50_us)} / ${ms(p.p99_us)} | ${p.rss_start_mib} → ${p.rss_mib} (${p.hwm_mib}) | ${per} | ${p.stop_s} |`);
  }
  text.push("");
}
const conns = of("connections");
if (conns.length) {
  text.push("Client connections to one shard, max(C, 100) producers spread over them, 64 streams, 1 KiB × 10-record batches, one in flight per producer:", "",
    "| connections | producers | records/s | MB/s | ack p50 / p99 ms | runneld RSS before → after (peak) MiB | RSS per connection |",
    "| --- | --- | --- | --- | --- | --- | --- |");
  const base = conns[0].rss_mib;
  for (const p of conns) {
    const per = p.x >= 1000 ? `${(((p.rss_mib - base) * 1048576) / p.x / 1024).toFixed(1)} KiB` : "–";
    text.push(`| ${fmtN(p.x)} | ${fmtN(Math.max(p.x, 100))} | ${fmtN(p.records_per_s)}${ok(p)} | ${p.mb_per_s?.toFixed(1)} | ` +
      `${ms(p.p50_us)} / ${ms(p.p99_us)} | ${p.rss_start_mib} → ${p.rss_mib} (${p.hwm_mib}) | ${per} |`);
  }
  text.push("");
}
const rec = of("recovery");
if (rec.length) {
  text.push("Restart time as the log grows (2 shards, 100 streams of 1 KiB records; page cache dropped before each start; exec → serving):", "",
    "| log GB | files | after SIGKILL, s | after SIGTERM, s | RSS after start, MiB |", "| --- | --- | --- | --- | --- |");
  for (const p of rec.filter((r) => r.after === "kill9")) {
    const clean = rec.find((r) => r.after === "sigterm" && r.x === p.x);
    text.push(`| ${p.x.toFixed(2)} | ${p.files} | ${p.ready_s.toFixed(2)} | ${clean ? clean.ready_s.toFixed(2) : "–"} | ${p.rss_mib} |`);
  }
  text.push("");
}
process.stdout.write(text.join("\n"));
writeFileSync(`${out}/scale-table.md`, text.join("\n"));

// ---- charts ------------------------------------------------------------------
const tmp = mkdtempSync(`${tmpdir()}/scale-`);
const q = (s) => `"${s}"`;
const gp = [];
const dat = (name, rows) => {
  const f = `${tmp}/${name}.dat`;
  writeFileSync(f, rows.map((r) => r.join(" ")).join("\n") + "\n");
  return q(f);
};
const twoAxes = (file, title, xlabel, pts) => {
  const f = dat(file, pts.map((p) => [p.x, p.records_per_s, p.rss_mib, p.p99_us / 1e3]));
  gp.push(`set terminal pngcairo size 1100,550 font ",10" noenhanced`, `set output ${q(`${out}/${file}.png`)}`,
    `set title ${q(`${title} (commit ${a.commit})`)}`, `set logscale x`, `set xlabel ${q(xlabel)}`,
    `set ylabel "records/s"`, `set y2label "runneld RSS, MiB"`, `set y2tics`, `set ytics nomirror`,
    `set yrange [0:*]`, `set y2range [0:*]`, `set key outside right top vertical`, `set grid`,
    `plot ${f} using 1:2 with linespoints lw 2 pt 7 title "records/s", ${f} using 1:3 axes x1y2 with linespoints lw 2 pt 5 dashtype 2 title "RSS MiB (right)"`,
    `unset logscale`, `unset y2tics`, `unset y2label`, `set ytics mirror`, `set autoscale`);
};
if (streams.length) twoAxes("scale-streams", "throughput and memory by streams on one shard", "streams (log)", streams);
if (conns.length) twoAxes("scale-connections", "throughput and memory by client connections to one shard", "connections (log)", conns);
if (rec.length) {
  const kill = dat("rec-kill", rec.filter((r) => r.after === "kill9").map((r) => [r.x, r.ready_s]));
  const term = dat("rec-term", rec.filter((r) => r.after === "sigterm").map((r) => [r.x, r.ready_s]));
  gp.push(`set terminal pngcairo size 1100,550 font ",10" noenhanced`, `set output ${q(`${out}/scale-recovery.png`)}`,
    `set title ${q(`restart time (exec to serving) by log size, 2 shards (commit ${a.commit})`)}`,
    `set xlabel "log size, GB"`, `set ylabel "seconds"`, `set yrange [0:*]`, `set key outside right top vertical`, `set grid`,
    `plot ${kill} using 1:2 with linespoints lw 2 pt 7 title "after SIGKILL", ${term} using 1:2 with linespoints lw 2 pt 5 title "after SIGTERM"`);
}
writeFileSync(`${tmp}/charts.gp`, gp.join("\n") + "\n");
execFileSync("gnuplot", [`${tmp}/charts.gp`], { stdio: "inherit" });
