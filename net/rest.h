#pragma once
// The admin port's JSON REST API (docs/REFERENCE.md, "Operator interface"): buckets,
// streams, records, tails, per-shard statistics and consumer lag, for curl
// and scripts. The endpoints, bodies and error mapping are documented in
// net/README.md ("Admin REST").
//
// A thin adapter over the binary protocol: a REST call builds the request
// body a client would send (proto/wire.h), runs it through the shard's
// Router — which routes it to the stream's owning shard and answers
// with a whole frame, errors included — then decodes the answer and renders
// JSON. Validation, routing and semantics are therefore the binary
// protocol's; what is added here is only the HTTP shape. Two things go past
// the Router, by message to the shards that own them: a stream's
// subscriptions (consumer lag) and the per-shard statistics.
//
// serve() runs on the shard that accepted the HTTP connection. A request's
// state lives on the heap until its answer is sent; nothing here throws
// (JSON is parsed without exceptions and checked before every access).
//
// The parsing and conversion functions below are pure, for the unit tests
// (net/rest_test.cc) and the fuzz target (tests/fuzz/rest_fuzz.cc).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/reactor.h"
#include "core/status.h"
#include "net/http_connection.h"
#include "proto/records.h"
#include "proto/limits.h"
#include "proto/wire.h"

namespace runnel {

class Router;

namespace rest {

using Json = nlohmann::ordered_json;

// --- Routes ----------------------------------------------------------------

enum class Resource : uint8_t {
  kBuckets,  // /v1/buckets
  kBucket,   // /v1/buckets/{b}
  kStreams,  // /v1/buckets/{b}/streams
  kStream,   // /v1/buckets/{b}/streams/{s}
  kRecords,  // .../{s}/records
  kTail,     // .../{s}/tail
  kSeal,     // .../{s}/seal
  kTrim,     // .../{s}/trim
  kFence,    // .../{s}/fence
  kShards,   // /v1/shards
  kTokens,   // /v1/tokens
  kToken,    // /v1/tokens/{id}
};

struct Route {
  Resource resource = Resource::kBuckets;
  std::string bucket;  // Percent-decoded.
  std::string stream;  // Percent-decoded: "%2F" is a '/' inside the name.
  std::string token;   // kToken: the token's id.
};

// The route of a request path (not yet decoded; the query already cut off):
// not_found for a path that is none of the API's, invalid_argument for bad
// percent-encoding or a name longer than the wire can carry.
Result<Route> parse_route(std::string_view path);
// "GET, HEAD, POST" and the like, for 405 answers' Allow header.
std::string_view allowed_methods(Resource resource);
bool method_allowed(Resource resource, std::string_view method);

// --- Text ------------------------------------------------------------------

// Strict percent-decoding: "%" must be followed by two hex digits. With
// plus_is_space (query strings), '+' decodes to ' '.
bool percent_decode(std::string_view in, bool plus_is_space, std::string* out);
// Every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~) as %XX.
std::string percent_encode(std::string_view in);

using QueryParams = std::vector<std::pair<std::string, std::string>>;
// "a=1&b=x%20y" in order; "k" alone has the empty value; empty pieces are
// skipped. invalid_argument on bad percent-encoding.
Result<QueryParams> parse_query(std::string_view query);

// --- Errors ----------------------------------------------------------------

// The HTTP status for a protocol error code (table in net/README.md).
int http_status(ErrorCode code);
// {"error":{"code":…,"message":…}} with its status; seq_num_mismatch and
// out_of_range also carry "tail". overloaded and unavailable say Retry-After.
HttpResponse error_response(const Status& status);

// --- JSON <-> protocol ------------------------------------------------------

// A request body that must be one JSON object (invalid_argument otherwise).
Result<Json> parse_json_object(std::string_view text);

// Apply the fields present in `patch` (an object) to `config`; unknown
// fields and wrong types are invalid_argument. Stream config fields:
// timestamping ("client-prefer" | "client-require" | "arrival"),
// retention_age_ms, retention_bytes, delete_on_empty_ms, compress_lz4;
// bucket config: default_stream_config (merged likewise),
// create_stream_on_append, create_stream_on_read.
Status merge_stream_config(const Json& patch, StreamConfig* config);
Status merge_bucket_config(const Json& patch, BucketConfig* config);

Json to_json(const StreamConfig& config);
Json to_json(const BucketConfig& config);
Json to_json(const StreamInfo& info);
Json to_json(const BucketInfo& info);
// A token as JSON: id, buckets/streams/tokens scopes as text ("logs-*"),
// ops as names, expires_ms, auto_prefix_streams, limits, created_ms,
// issued_by.
Json to_json(const TokenInfo& info);
// POST /v1/tokens: {"id", "buckets"?, "streams"?, "tokens"?, "ops" (names
// or groups, an array or "read,append"), "expires_in_ms"? | "expires_ms"?,
// "auto_prefix_streams"?, "limits"?:{append_bytes_per_s, ...}};
// expires_in_ms counts from `now_ms`. invalid_argument otherwise.
Result<TokenInfo> parse_token_json(std::string_view body, uint64_t now_ms);
// "read,append,manage-streams" -> TokenOp bits; invalid_argument naming an unknown one.
Result<uint32_t> parse_token_ops(std::string_view list);

// ?prefix=&start_after=&limit= of the listings.
struct ListQuery {
  std::string prefix;
  std::string start_after;
  uint32_t limit = 0;  // 0: the server's default.
};
Result<ListQuery> parse_list_query(const QueryParams& params);

// An append, as POST .../records gives it: the records already encoded.
struct AppendInput {
  PayloadBuilder payload;
  std::optional<uint64_t> match_seq_num;
  std::optional<std::string> fencing_token;
  std::optional<std::pair<uint64_t, uint64_t>> producer;  // producer_id, producer_seq.
};
// {"records":[{"body"|"body_base64":…, "headers"|"headers_base64":[[n,v],…],
// "timestamp":N}], "match_seq_num"?, "fencing_token"?, "producer_id"?,
// "producer_seq"?}; the options may also come from the query (not both).
Result<AppendInput> parse_append_json(std::string_view body, const QueryParams& params);
// text/plain: one record per line ('\n', an optional '\r' before it is
// dropped; a last line without '\n' counts); options from the query.
Result<AppendInput> parse_append_text(std::string_view body, const QueryParams& params);
// The APPEND request body (PROTOCOL.md "Append") for those records.
std::string append_request(std::string_view bucket, std::string_view stream, const AppendInput& input);

// ?seq_num=|timestamp=|tail_offset= (at most one; none: seq_num 0),
// count= (1..1000, default 1000; more is taken as 1000),
// wait_ms= (0..60000), until_timestamp=.
struct ReadQuery {
  wire::Start start;
  uint32_t count = 1000;
  uint32_t wait_ms = 0;
  uint64_t until_timestamp = 0;
};
Result<ReadQuery> parse_read_query(const QueryParams& params);
inline constexpr uint32_t kReadCountMax = 1000;
inline constexpr uint32_t kReadBytesMax = 1u << 20;  // Per answer (whole batches; at least one record).

// {"records":[{"seq_num","timestamp","headers"|"headers_base64","body"|
// "body_base64"}…],"tail":N} from a READ answer: the records from the
// answer's first_record_index on, at most `count`, none at or after `until`
// (0: no bound), with effective timestamps. corrupt if a batch fails its
// checksum or does not decode.
Result<Json> records_json(const wire::ReadAnswer& answer, uint32_t count, uint64_t until);

// --- Serving ---------------------------------------------------------------

// Answers one REST request (any path: unknown ones get a 404). On the
// connection's shard; `streams` is that shard's. Until `ready` (every
// shard's store open and the buckets on every replica) the API's routes are
// answered 503 unavailable. `who`: the request's token (copied), null while
// access control is off.
void serve(Reactor& reactor, Router& streams, bool ready, const TokenInfo* who, const HttpRequest& request,
           HttpResponder responder);

}  // namespace rest
}  // namespace runnel
