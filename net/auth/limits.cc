#include "net/auth/limits.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace runnel::auth {

namespace {

// Refills `b` for `seconds` at `rate` per second (0: unlimited), at most one second's worth.
void refill(auto& b, uint64_t rate, double seconds) {
  if (rate == 0) return;
  const double cap = static_cast<double>(rate);
  if (!b.started) {
    b.level = cap;
    b.started = true;
    return;
  }
  b.level = std::min(cap, b.level + cap * seconds);
}

// Milliseconds until `b` is out of debt at `rate` (0 if it is not in debt).
uint64_t wait_ms(const auto& b, uint64_t rate) {
  if (rate == 0 || b.level >= 0) return 0;
  return static_cast<uint64_t>(std::ceil(-b.level * 1000.0 / static_cast<double>(rate)));
}

Status throttled(const TokenInfo& token, std::string_view what, uint64_t ms) {
  return Status(
      ErrorCode::kThrottled,
      fmt::format("token '{}' is over its {} rate; retry in {} ms", token.id, what, std::max<uint64_t>(ms, 1)),
      std::max<uint64_t>(ms, 1));
}

}  // namespace

TokenMeters::Meter& TokenMeters::meter(const TokenInfo& token, uint64_t now_us) {
  Meter& m = meters_[token.id];
  const double seconds = m.at_us == 0 || now_us < m.at_us ? 0 : static_cast<double>(now_us - m.at_us) / 1e6;
  m.at_us = now_us;
  const TokenLimits& l = token.limits;
  refill(m.append_bytes, l.append_bytes_per_s, seconds);
  refill(m.append_records, l.append_records_per_s, seconds);
  refill(m.read_bytes, l.read_bytes_per_s, seconds);
  refill(m.read_records, l.read_records_per_s, seconds);
  return m;
}

Status TokenMeters::admit_append(const TokenInfo& token, uint64_t records, uint64_t bytes, uint64_t now_us) {
  Meter& m = meter(token, now_us);
  const TokenLimits& l = token.limits;
  const uint64_t wait =
      std::max(wait_ms(m.append_bytes, l.append_bytes_per_s), wait_ms(m.append_records, l.append_records_per_s));
  if (wait > 0) return throttled(token, "append", wait);
  if (l.append_bytes_per_s != 0) m.append_bytes.level -= static_cast<double>(bytes);
  if (l.append_records_per_s != 0) m.append_records.level -= static_cast<double>(records);
  return Status::ok();
}

Status TokenMeters::admit_read(const TokenInfo& token, uint64_t now_us) {
  Meter& m = meter(token, now_us);
  const TokenLimits& l = token.limits;
  const uint64_t wait =
      std::max(wait_ms(m.read_bytes, l.read_bytes_per_s), wait_ms(m.read_records, l.read_records_per_s));
  if (wait > 0) return throttled(token, "read", wait);
  return Status::ok();
}

void TokenMeters::charge_read(const TokenInfo& token, uint64_t records, uint64_t bytes, uint64_t now_us) {
  Meter& m = meter(token, now_us);
  if (token.limits.read_bytes_per_s != 0) m.read_bytes.level -= static_cast<double>(bytes);
  if (token.limits.read_records_per_s != 0) m.read_records.level -= static_cast<double>(records);
}

}  // namespace runnel::auth
