// Fuzzes what the admin REST API (net/rest.h) parses of untrusted bytes
// beyond llhttp: request paths, query strings, JSON bodies (appends,
// configs, access tokens), text/plain appends and base64 (core/text.h). Nothing may crash
// or throw; errors are invalid_argument or not_found; and what is accepted
// round-trips: an append's records, rendered back as JSON the way a read
// answers them, hold the same bodies and headers; percent-encoding and
// base64 decode to what was encoded.
//
// The first byte picks what the rest of the input is.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/assert.h"
#include "core/text.h"
#include "net/rest.h"

namespace {

using namespace runnel;
using namespace runnel::rest;

void check_error(const Status& s) {
  RUNNEL_ASSERT(!s.is_ok());
  RUNNEL_ASSERT(s.code() == ErrorCode::kInvalidArgument || s.code() == ErrorCode::kNotFound);
}

struct Record {
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

std::vector<Record> decode(std::string_view payload, uint32_t count) {
  std::vector<Record> out;
  RecordIterator it(payload, count, BatchLimits{UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX});
  RecordView view;
  while (it.next(&view)) {
    Record r{std::string(view.body), {}};
    HeaderIterator headers(view.headers, view.header_count);
    RecordHeader h;
    while (headers.next(&h)) r.headers.emplace_back(std::string(h.name), std::string(h.value));
    out.push_back(std::move(r));
  }
  RUNNEL_ASSERT(it.status().is_ok());
  return out;
}

// The append's records, through the protocol body and a read's rendering,
// and back through the append parser: the same bodies and headers.
void check_append_round_trip(const AppendInput& input) {
  const std::string body = append_request("b-1", "s", input);
  wire::Append m;
  RUNNEL_ASSERT(wire::decode_body(body, &m));
  RUNNEL_ASSERT(m.record_count == input.payload.record_count());
  RUNNEL_ASSERT(m.payload_checksum == payload_checksum(m.payload));
  wire::ReadAnswer answer;
  wire::Batch batch;
  batch.record_count = m.record_count;
  batch.first_timestamp = batch.arrival_timestamp = 1;
  batch.payload = m.payload;
  batch.payload_checksum = m.payload_checksum;
  answer.batches.push_back(batch);
  auto rendered = records_json(answer, m.record_count, 0);
  RUNNEL_ASSERT(rendered.is_ok());
  Json again = Json::object();
  again["records"] = Json::array();
  for (Json record : (*rendered)["records"]) {
    record.erase("seq_num");
    again["records"].push_back(std::move(record));
  }
  auto reparsed = parse_append_json(again.dump(), {});
  RUNNEL_ASSERT(reparsed.is_ok());
  const std::vector<Record> before = decode(input.payload.bytes(), input.payload.record_count());
  const std::vector<Record> after = decode(reparsed->payload.bytes(), reparsed->payload.record_count());
  RUNNEL_ASSERT(before.size() == after.size());
  for (size_t i = 0; i < before.size(); i++) {
    RUNNEL_ASSERT(before[i].body == after[i].body);
    RUNNEL_ASSERT(before[i].headers == after[i].headers);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 7;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0: {  // A request path.
      auto route = parse_route(in);
      if (!route) {
        check_error(route.status());
      } else {
        RUNNEL_ASSERT(route->bucket.size() <= wire::kStrBytesMax && route->stream.size() <= wire::kStrBytesMax);
        (void)method_allowed(route->resource, "GET");
      }
      std::string decoded;
      if (percent_decode(in, false, &decoded)) {
        std::string again;
        RUNNEL_ASSERT(percent_decode(percent_encode(decoded), false, &again) && again == decoded);
      }
      break;
    }
    case 1: {  // A query string, as the listings and reads take it.
      auto params = parse_query(in);
      if (!params) return check_error(params.status()), 0;
      if (auto q = parse_read_query(*params); q) {
        RUNNEL_ASSERT(q->count >= 1 && q->count <= kReadCountMax);
        RUNNEL_ASSERT(q->wait_ms <= kWaitMsMax);
      } else {
        check_error(q.status());
      }
      if (auto q = parse_list_query(*params); !q) check_error(q.status());
      break;
    }
    case 2: {  // A JSON append.
      auto input = parse_append_json(in, {});
      if (!input) return check_error(input.status()), 0;
      check_append_round_trip(*input);
      break;
    }
    case 3: {  // A text/plain append.
      auto input = parse_append_text(in, {});
      if (!input) return check_error(input.status()), 0;
      check_append_round_trip(*input);
      break;
    }
    case 4: {  // A JSON config body.
      auto json = parse_json_object(in);
      if (!json) return check_error(json.status()), 0;
      BucketConfig bucket;
      if (Status s = merge_bucket_config(*json, &bucket); s) {
        BucketConfig back;
        RUNNEL_ASSERT(merge_bucket_config(to_json(bucket), &back).is_ok() && back == bucket);
      } else {
        check_error(s);
      }
      StreamConfig stream;
      if (Status s = merge_stream_config(*json, &stream); !s) check_error(s);
      break;
    }
    case 5: {  // Base64.
      std::string decoded;
      if (base64_decode(in, &decoded)) {
        std::string again;
        RUNNEL_ASSERT(base64_decode(base64_encode(decoded), &again) && again == decoded);
      }
      std::string round;
      RUNNEL_ASSERT(base64_decode(base64_encode(in), &round) && round == in);
      break;
    }
    case 6: {  // An access token to issue (POST /v1/tokens), and its text round trip.
      auto token = parse_token_json(in, 1'000'000);
      if (!token) {
        check_error(token.status());
        break;
      }
      RUNNEL_ASSERT((token->ops & ~kOpsAll) == 0);
      // Scopes and operations print as they parse.
      for (const NameScope* scope : {&token->buckets, &token->streams, &token->tokens}) {
        RUNNEL_ASSERT(NameScope::parse(scope->text()) == *scope);
      }
      const Json j = to_json(*token);
      std::string ops;
      for (const auto& op : j["ops"]) ops += op.get<std::string>() + ",";
      auto again = parse_token_ops(ops);
      RUNNEL_ASSERT(again.is_ok() && *again == token->ops);
      // Once issued, its wire form decodes to the same token.
      const std::string body = wire::body_of(*token);
      TokenInfo decoded;
      RUNNEL_ASSERT(wire::decode_body(body, &decoded) && decoded == *token);
      break;
    }
  }
  return 0;
}
