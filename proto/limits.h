#pragma once
// Protocol limits that both ends must agree on, in one place. The server
// enforces them; the client library sizes its windows by them (the
// static_asserts in proto/client/client.cc tie the two together).

#include <cstddef>
#include <cstdint>

namespace runnel {

// Idempotent producers: per stream, the server remembers the answers to the
// last kProducerWindow producer_seqs of each of its kProducersPerStreamMax
// most recently seen producers — in memory and, through the log, across
// restarts. A client must not have more idempotent appends of one stream in
// flight than the window, or a retry could fall out of it.
inline constexpr size_t kProducerWindow = 32;
inline constexpr size_t kProducersPerStreamMax = 256;

// Batches: the most the wire and the log accept. A server's configuration
// may lower them (server.batch_records_max, server.batch_bytes_max,
// server.record_bytes_max) for new appends; what is already stored is
// always read back under these, so lowering a limit never hides old data.
inline constexpr uint32_t kBatchRecordsMax = 1000;
inline constexpr uint32_t kBatchBytesMax = 1024 * 1024 + 64 * 1024;  // 1 MiB of records plus encoding overhead.
inline constexpr uint32_t kRecordBytesMax = 1024 * 1024;

// A long-poll read (binary READ or REST GET records) waits at most this long.
inline constexpr uint32_t kWaitMsMax = 60'000;

}  // namespace runnel
