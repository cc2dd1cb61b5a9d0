// Fuzzes the admin port's HTTP request parser: arbitrary bytes, split into
// arbitrary chunks, must never crash it, and every request it accepts must
// respect the configured limits.

#include <cstddef>
#include <cstdint>

#include "core/assert.h"
#include "net/http_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  runnel::HttpLimits limits;
  limits.header_bytes_max = 1024;
  limits.body_bytes_max = 4096;
  limits.header_count_max = 16;
  // The first byte picks the chunk size, so the fuzzer explores every split.
  const size_t chunk = 1 + data[0] % 64;
  data++;
  size--;
  runnel::HttpRequestParser parser(limits);
  size_t pos = 0;
  int requests = 0;
  while (pos < size) {
    size_t len = size - pos < chunk ? size - pos : chunk;
    size_t consumed = 0;
    auto result = parser.feed(reinterpret_cast<const char*>(data + pos), len, &consumed);
    RUNNEL_ASSERT(consumed <= len);
    pos += consumed;
    if (result == runnel::HttpRequestParser::Result::kError) {
      RUNNEL_ASSERT(parser.error_status() >= 400 && parser.error_status() < 500);
      RUNNEL_ASSERT(!parser.error_message().empty());
      return 0;
    }
    if (result == runnel::HttpRequestParser::Result::kRequestReady) {
      const runnel::HttpRequest& r = parser.request();
      RUNNEL_ASSERT(r.body.size() <= limits.body_bytes_max);
      RUNNEL_ASSERT(r.headers.size() <= limits.header_count_max);
      RUNNEL_ASSERT(r.target.size() <= limits.header_bytes_max);
      RUNNEL_ASSERT(!r.path.empty() && r.path[0] == '/');
      RUNNEL_ASSERT(!r.method.empty());
      parser.next();
      requests++;
    }
    if (result == runnel::HttpRequestParser::Result::kNeedMore) RUNNEL_ASSERT(consumed == len);
  }
  (void)parser.finish();
  return 0;
}
