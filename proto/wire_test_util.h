#pragma once
// Test helpers for the wire format, shared by the unit, in-process and
// integration tests that speak it.

#include <string_view>

#include "proto/records.h"
#include "proto/wire.h"

namespace runnel::wire {

// An APPEND of `payload` (which must outlive the message), with the checksum
// a client computes.
inline Append append_of(const PayloadBuilder& payload, std::string_view bucket, std::string_view stream) {
  Append a;
  a.bucket = bucket;
  a.stream = stream;
  a.record_count = payload.record_count();
  a.payload = payload.bytes();
  a.payload_checksum = payload_checksum(a.payload);
  return a;
}

}  // namespace runnel::wire
