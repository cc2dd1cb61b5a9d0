// Google Benchmark for the per-batch work on the append and read paths,
// without disk or network: building a payload (the client's side), verifying
// it (checksum + one decode), stamping timestamps, sealing and verifying the
// header, lz4, and the binary protocol's APPEND codec. Each reports bytes/s
// of payload, so it can be held against the disk (~2 GB/s) and memcpy
// (~13 GB/s) on this machine.
//
//   build/release/perf/components_bench [--benchmark_filter=...]

#include <benchmark/benchmark.h>

#include <string>

#include "proto/wire.h"
#include "storage/batch.h"

namespace runnel {
namespace {

// A batch of `records` records of `bytes` each (body only, no headers).
std::string make_payload(int records, int bytes) {
  PayloadBuilder builder;
  const std::string body(static_cast<size_t>(bytes), 'x');
  for (int i = 0; i < records; i++) builder.add(0, body);
  return builder.bytes();
}

BatchHeader header_for(const std::string& payload, int records) {
  BatchHeader h;
  h.stream_id = 1;
  h.record_count = static_cast<uint32_t>(records);
  h.payload_bytes = static_cast<uint32_t>(payload.size());
  h.payload_checksum = payload_checksum(payload);
  return h;
}

void BM_BuildPayload(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0)), bytes = static_cast<int>(state.range(1));
  const std::string body(static_cast<size_t>(bytes), 'x');
  for (auto _ : state) {
    PayloadBuilder builder;
    for (int i = 0; i < records; i++) builder.add(0, body);
    benchmark::DoNotOptimize(builder.bytes().data());
  }
  state.SetBytesProcessed(state.iterations() * records * bytes);
}
BENCHMARK(BM_BuildPayload)->Args({1000, 100})->Args({100, 1024})->Args({60, 16384});

void BM_VerifyPayload(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  const std::string payload = make_payload(records, static_cast<int>(state.range(1)));
  const BatchHeader h = header_for(payload, records);
  const BatchLimits limits;
  for (auto _ : state) benchmark::DoNotOptimize(verify_payload(h, payload, limits).is_ok());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
BENCHMARK(BM_VerifyPayload)->Args({1000, 100})->Args({100, 1024})->Args({60, 16384});

void BM_StampSealVerifyHeader(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  const std::string payload = make_payload(records, static_cast<int>(state.range(1)));
  const BatchLimits limits;
  for (auto _ : state) {
    BatchHeader h = header_for(payload, records);
    benchmark::DoNotOptimize(stamp_batch(&h, payload, 1000, 0, Timestamping::kClientPrefer, limits).is_ok());
    seal_header(&h, 7);
    benchmark::DoNotOptimize(verify_header(h, 7, limits).is_ok());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
BENCHMARK(BM_StampSealVerifyHeader)->Args({1000, 100})->Args({100, 1024})->Args({60, 16384});

// The checks an append makes before placing its batch (client-prefer
// timestamps): verify the payload, then stamp. Two passes over the records
// (stamping decodes them again) against one (verify gathers the timestamps).
void append_checks(benchmark::State& state, bool one_pass) {
  const int records = static_cast<int>(state.range(0));
  PayloadBuilder builder;
  const std::string body(static_cast<size_t>(state.range(1)), 'x');
  for (int i = 0; i < records; i++) builder.add(1000 + static_cast<uint64_t>(i), body);
  const std::string& payload = builder.bytes();
  const BatchLimits limits;
  for (auto _ : state) {
    BatchHeader h = header_for(payload, records);
    if (one_pass) {
      PayloadTimestamps t;
      benchmark::DoNotOptimize(verify_payload(h, payload, limits, &t).is_ok());
      benchmark::DoNotOptimize(stamp_batch(&h, t, 2000, 0, Timestamping::kClientPrefer).is_ok());
    } else {
      benchmark::DoNotOptimize(verify_payload(h, payload, limits).is_ok());
      benchmark::DoNotOptimize(stamp_batch(&h, payload, 2000, 0, Timestamping::kClientPrefer, limits).is_ok());
    }
    benchmark::DoNotOptimize(h.last_timestamp);
  }
  state.SetItemsProcessed(state.iterations() * records);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
void BM_AppendChecks_TwoPasses(benchmark::State& state) { append_checks(state, false); }
void BM_AppendChecks_OnePass(benchmark::State& state) { append_checks(state, true); }
BENCHMARK(BM_AppendChecks_TwoPasses)->Args({1000, 100})->Args({100, 1024});
BENCHMARK(BM_AppendChecks_OnePass)->Args({1000, 100})->Args({100, 1024});

void BM_Lz4Compress(benchmark::State& state) {
  const std::string payload = make_payload(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  std::string out;
  for (auto _ : state) benchmark::DoNotOptimize(compress_payload(payload, &out));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
BENCHMARK(BM_Lz4Compress)->Args({100, 1024});

void BM_WireAppendRoundTrip(benchmark::State& state) {
  const std::string payload = make_payload(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  wire::Append a;
  a.bucket = "orders";
  a.stream = "eu/1";
  a.record_count = static_cast<uint32_t>(state.range(0));
  a.payload_checksum = payload_checksum(payload);
  a.payload = payload;
  std::string frame;
  for (auto _ : state) {
    frame.clear();
    wire::append_frame(&frame, wire::Opcode::kAppend, 0, 1, a);
    wire::Append back;
    benchmark::DoNotOptimize(wire::decode_body(std::string_view(frame).substr(wire::kFrameHeaderBytes), &back));
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
BENCHMARK(BM_WireAppendRoundTrip)->Args({1000, 100})->Args({100, 1024});

}  // namespace
}  // namespace runnel

BENCHMARK_MAIN();
