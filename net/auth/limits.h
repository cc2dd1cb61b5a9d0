#pragma once
// Per-token rate limits (TokenLimits), metered on one shard: each shard's
// Router keeps its own meters and meters the appends and reads of the
// streams it owns, whichever shard the request came in on, so no meter is
// shared between threads and a token's rate applies per owning shard (a
// token writing to streams on two shards may use its rate on each).
// Subscriptions are admitted only while the token's read meter on the
// connection's shard is out of debt; their pushes are bounded by credit, not
// metered.
//
// Each rate is a token bucket holding at most one second's worth. A request
// is admitted while its bucket is not in debt and is then charged what it
// moved (an append up front, a read once answered), so one request larger
// than a second's worth still goes through — and the next waits until the
// debt is paid. A refused request gets kThrottled with detail() = the
// milliseconds until the bucket is out of debt.

#include <cstdint>
#include <string>
#include <unordered_map>

#include "core/status.h"
#include "proto/values.h"

namespace runnel::auth {

inline bool has_rate_limits(const TokenLimits& l) {
  return (l.append_bytes_per_s | l.append_records_per_s | l.read_bytes_per_s | l.read_records_per_s) != 0;
}

class TokenMeters {
 public:
  // An append of `records` records and `bytes` payload bytes: admitted and
  // charged, or kThrottled.
  Status admit_append(const TokenInfo& token, uint64_t records, uint64_t bytes, uint64_t now_us);
  // A read or subscribe: admitted unless its read meter is in debt.
  Status admit_read(const TokenInfo& token, uint64_t now_us);
  // What an answered read moved.
  void charge_read(const TokenInfo& token, uint64_t records, uint64_t bytes, uint64_t now_us);
  size_t size() const { return meters_.size(); }

 private:
  struct Bucket {
    double level = 0;  // Units available; negative: owed.
    bool started = false;
  };
  struct Meter {
    Bucket append_bytes, append_records, read_bytes, read_records;
    uint64_t at_us = 0;
  };
  Meter& meter(const TokenInfo& token, uint64_t now_us);

  std::unordered_map<std::string, Meter> meters_;  // By token id.
};

}  // namespace runnel::auth
