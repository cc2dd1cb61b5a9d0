// The REST API's pure parts: routes, percent-encoding, query strings, the
// error mapping, and JSON <-> protocol conversions (base64 is core/text.h's,
// tested in core/text_test.cc). Invalid input as often as valid. The API end
// to end is tests/integration/rest_test.cc.

#include "net/rest.h"

#include <gtest/gtest.h>

#include "core/text.h"

namespace runnel::rest {
namespace {

// --- percent-encoding and query strings --------------------------------------

TEST(RestPercentDecode, DecodesEscapesInEitherCase) {
  std::string out;
  ASSERT_TRUE(percent_decode("a%2Fb%2fc%20d", false, &out));
  EXPECT_EQ(out, "a/b/c d");
}

TEST(RestPercentDecode, KeepsPlusInPathsAndMakesItASpaceInQueries) {
  std::string out;
  ASSERT_TRUE(percent_decode("a+b", false, &out));
  EXPECT_EQ(out, "a+b");
  ASSERT_TRUE(percent_decode("a+b%2B", true, &out));
  EXPECT_EQ(out, "a b+");
}

TEST(RestPercentDecode, DecodesNulAndHighBytes) {
  std::string out;
  ASSERT_TRUE(percent_decode("%00%FF", false, &out));
  EXPECT_EQ(out, std::string("\0\xFF", 2));
}

TEST(RestPercentDecode, RefusesTruncatedAndNonHexEscapes) {
  std::string out;
  EXPECT_FALSE(percent_decode("%", false, &out));
  EXPECT_FALSE(percent_decode("abc%2", false, &out));
  EXPECT_FALSE(percent_decode("%zz", false, &out));
  EXPECT_FALSE(percent_decode("%2g", false, &out));
  EXPECT_FALSE(percent_decode("%%41", false, &out));
}

TEST(RestPercentEncode, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; c++) all.push_back(static_cast<char>(c));
  const std::string encoded = percent_encode(all);
  EXPECT_EQ(encoded.find('/'), std::string::npos);
  std::string decoded;
  ASSERT_TRUE(percent_decode(encoded, false, &decoded));
  EXPECT_EQ(decoded, all);
  EXPECT_EQ(percent_encode("a/b c~"), "a%2Fb%20c~");
}

TEST(RestQuery, ParsesPairsInOrderAndSkipsEmptyPieces) {
  auto q = parse_query("a=1&&b=x%20y&flag&c=&a=2");
  ASSERT_TRUE(q.is_ok());
  const QueryParams expected = {{"a", "1"}, {"b", "x y"}, {"flag", ""}, {"c", ""}, {"a", "2"}};
  EXPECT_EQ(*q, expected);
  EXPECT_TRUE(parse_query("")->empty());
}

TEST(RestQuery, RefusesBadPercentEncoding) {
  auto q = parse_query("prefix=%G0");
  ASSERT_FALSE(q.is_ok());
  EXPECT_EQ(q.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(parse_query("%=1").is_ok());
}

// --- routes --------------------------------------------------------------------

TEST(RestRoute, ParsesEveryResource) {
  struct Case {
    const char* path;
    Resource resource;
    const char* bucket;
    const char* stream;
  };
  const Case cases[] = {
      {"/v1/buckets", Resource::kBuckets, "", ""},
      {"/v1/buckets/orders", Resource::kBucket, "orders", ""},
      {"/v1/buckets/orders/streams", Resource::kStreams, "orders", ""},
      {"/v1/buckets/orders/streams/eu", Resource::kStream, "orders", "eu"},
      {"/v1/buckets/orders/streams/eu/records", Resource::kRecords, "orders", "eu"},
      {"/v1/buckets/orders/streams/eu/tail", Resource::kTail, "orders", "eu"},
      {"/v1/buckets/orders/streams/eu/seal", Resource::kSeal, "orders", "eu"},
      {"/v1/buckets/orders/streams/eu/trim", Resource::kTrim, "orders", "eu"},
      {"/v1/buckets/orders/streams/eu/fence", Resource::kFence, "orders", "eu"},
      {"/v1/shards", Resource::kShards, "", ""},
  };
  for (const Case& c : cases) {
    auto r = parse_route(c.path);
    ASSERT_TRUE(r.is_ok()) << c.path << ": " << r.status().to_string();
    EXPECT_EQ(r->resource, c.resource) << c.path;
    EXPECT_EQ(r->bucket, c.bucket) << c.path;
    EXPECT_EQ(r->stream, c.stream) << c.path;
  }
}

TEST(RestRoute, DecodesASlashInsideAStreamName) {
  auto r = parse_route("/v1/buckets/orders/streams/eu%2Fwest%2F1%20a/records");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->resource, Resource::kRecords);
  EXPECT_EQ(r->stream, "eu/west/1 a");
}

TEST(RestRoute, UnknownPathsAreNotFound) {
  for (const char* path : {"", "/", "/v1", "/v2/buckets", "/v1/bucket", "/v1/buckets/b/stream",
                           "/v1/buckets/b/streams/s/unknown", "/v1/buckets/b/streams/eu/west",
                           "/v1/buckets/b/streams/s/records/x", "/v1/shards/0", "v1/buckets"}) {
    auto r = parse_route(path);
    ASSERT_FALSE(r.is_ok()) << path;
    EXPECT_EQ(r.status().code(), ErrorCode::kNotFound) << path;
  }
}

TEST(RestRoute, BadPercentEncodingInANameIsInvalidArgument) {
  auto r = parse_route("/v1/buckets/orders/streams/a%2");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  r = parse_route("/v1/buckets/%zz");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
}

TEST(RestRoute, RefusesANameTheWireCannotCarry) {
  auto r = parse_route("/v1/buckets/b/streams/" + std::string(wire::kStrBytesMax + 1, 'x'));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
}

TEST(RestRoute, AllowsTheDocumentedMethods) {
  EXPECT_TRUE(method_allowed(Resource::kBuckets, "POST"));
  EXPECT_FALSE(method_allowed(Resource::kBuckets, "DELETE"));
  EXPECT_TRUE(method_allowed(Resource::kBucket, "PATCH"));
  EXPECT_TRUE(method_allowed(Resource::kStream, "DELETE"));
  EXPECT_FALSE(method_allowed(Resource::kStream, "POST"));
  EXPECT_TRUE(method_allowed(Resource::kRecords, "GET"));
  EXPECT_FALSE(method_allowed(Resource::kTail, "POST"));
  EXPECT_TRUE(method_allowed(Resource::kSeal, "POST"));
  EXPECT_FALSE(method_allowed(Resource::kSeal, "GET"));
  EXPECT_FALSE(method_allowed(Resource::kShards, "GE"));
  EXPECT_EQ(allowed_methods(Resource::kStream), "GET, HEAD, PATCH, DELETE");
}

// --- errors --------------------------------------------------------------------

TEST(RestErrors, MapsEveryCodeToAFittingStatus) {
  EXPECT_EQ(http_status(ErrorCode::kInternal), 500);
  EXPECT_EQ(http_status(ErrorCode::kInvalidArgument), 400);
  EXPECT_EQ(http_status(ErrorCode::kNotFound), 404);
  EXPECT_EQ(http_status(ErrorCode::kAlreadyExists), 409);
  EXPECT_EQ(http_status(ErrorCode::kOverloaded), 429);
  EXPECT_EQ(http_status(ErrorCode::kUnavailable), 503);
  EXPECT_EQ(http_status(ErrorCode::kShuttingDown), 503);
  EXPECT_EQ(http_status(ErrorCode::kIoError), 500);
  EXPECT_EQ(http_status(ErrorCode::kNoSpace), 507);
  EXPECT_EQ(http_status(ErrorCode::kUnsupported), 501);
  EXPECT_EQ(http_status(ErrorCode::kTooLarge), 413);
  EXPECT_EQ(http_status(ErrorCode::kTimeout), 504);
  EXPECT_EQ(http_status(ErrorCode::kCorrupt), 500);
  EXPECT_EQ(http_status(ErrorCode::kSeqNumMismatch), 409);
  EXPECT_EQ(http_status(ErrorCode::kFencingTokenMismatch), 409);
  EXPECT_EQ(http_status(ErrorCode::kOutOfRange), 416);
  EXPECT_EQ(http_status(ErrorCode::kStreamSealed), 409);
  EXPECT_EQ(http_status(ErrorCode::kUnauthenticated), 401);
  EXPECT_EQ(http_status(ErrorCode::kPermissionDenied), 403);
}

TEST(RestErrors, RendersCodeMessageAndTheTailWhereItMatters) {
  HttpResponse r = error_response(Status(ErrorCode::kSeqNumMismatch, "tail moved", 42));
  EXPECT_EQ(r.status, 409);
  auto j = parse_json_object(r.body);
  ASSERT_TRUE(j.is_ok());
  EXPECT_EQ((*j)["error"]["code"], "seq_num_mismatch");
  EXPECT_EQ((*j)["error"]["message"], "tail moved");
  EXPECT_EQ((*j)["error"]["tail"], 42);

  r = error_response(Status(ErrorCode::kNotFound, "no bucket 'x'"));
  EXPECT_EQ(r.status, 404);
  j = parse_json_object(r.body);
  ASSERT_TRUE(j.is_ok());
  EXPECT_FALSE((*j)["error"].contains("tail"));
}

TEST(RestErrors, AsksToRetryWhenOverloadedOrUnavailable) {
  for (ErrorCode code : {ErrorCode::kOverloaded, ErrorCode::kUnavailable}) {
    HttpResponse r = error_response(Status(code, "later"));
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].first, "Retry-After");
  }
}

TEST(RestErrors, ReplacesInvalidUtf8InMessages) {
  HttpResponse r = error_response(Status(ErrorCode::kNotFound, "no stream '\xFF'"));
  EXPECT_TRUE(parse_json_object(r.body).is_ok()) << r.body;
}

// --- JSON bodies and configs ---------------------------------------------------

TEST(RestJson, RefusesWhatIsNotOneObject) {
  for (const char* text : {"", "{", "[1]", "\"x\"", "{\"a\":1} x", "{\"a\":\"\xFF\"}", "nul"}) {
    auto j = parse_json_object(text);
    ASSERT_FALSE(j.is_ok()) << text;
    EXPECT_EQ(j.status().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(parse_json_object(" {\"a\":[1,{}]} ").is_ok());
}

TEST(RestJson, MergesTheGivenStreamConfigFieldsOnly) {
  StreamConfig c;
  c.retention_bytes = 77;
  auto patch = parse_json_object(R"({"timestamping":"arrival","retention_age_ms":1000,"compress_lz4":true})");
  ASSERT_TRUE(patch.is_ok());
  ASSERT_TRUE(merge_stream_config(*patch, &c).is_ok());
  EXPECT_EQ(c.timestamping, Timestamping::kArrival);
  EXPECT_EQ(c.retention_age_ms, 1000u);
  EXPECT_EQ(c.retention_bytes, 77u);
  EXPECT_TRUE(c.compress_lz4);
}

TEST(RestJson, RefusesBadStreamConfigFields) {
  for (const char* text : {R"({"retention_age":1})", R"({"retention_age_ms":-1})", R"({"retention_age_ms":1.5})",
                           R"({"retention_bytes":"10"})", R"({"timestamping":"later"})", R"({"compress_lz4":1})",
                           R"({"retention_bytes":18446744073709551616})"}) {
    auto patch = parse_json_object(text);
    ASSERT_TRUE(patch.is_ok()) << text;
    StreamConfig c;
    Status s = merge_stream_config(*patch, &c);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << text;
  }
  StreamConfig c;
  EXPECT_FALSE(merge_stream_config(Json::array(), &c).is_ok());
}

TEST(RestJson, MergesABucketConfigWithItsNestedStreamConfig) {
  BucketConfig c;
  c.default_stream_config.retention_bytes = 5;
  auto patch = parse_json_object(R"({"create_stream_on_append":true,"default_stream_config":{"retention_age_ms":9}})");
  ASSERT_TRUE(patch.is_ok());
  ASSERT_TRUE(merge_bucket_config(*patch, &c).is_ok());
  EXPECT_TRUE(c.create_stream_on_append);
  EXPECT_FALSE(c.create_stream_on_read);
  EXPECT_EQ(c.default_stream_config.retention_age_ms, 9u);
  EXPECT_EQ(c.default_stream_config.retention_bytes, 5u);
  auto bad = parse_json_object(R"({"default_stream_config":{"x":1}})");
  ASSERT_TRUE(bad.is_ok());
  EXPECT_FALSE(merge_bucket_config(*bad, &c).is_ok());
}

TEST(RestJson, ConfigsRoundTripThroughJson) {
  BucketConfig c;
  c.default_stream_config = StreamConfig{Timestamping::kClientRequire, 2, 3, 4, true};
  c.create_stream_on_read = true;
  BucketConfig back;
  ASSERT_TRUE(merge_bucket_config(to_json(c), &back).is_ok());
  EXPECT_EQ(back, c);
  const Json info = to_json(StreamInfo{"b", "s/1", c.default_stream_config, 10, true, false, 3, 9});
  EXPECT_EQ(info["name"], "s/1");
  EXPECT_EQ(info["config"]["timestamping"], "client-require");
  EXPECT_EQ(info["tail"], 9);
  EXPECT_EQ(info["sealed"], true);
}

TEST(RestJson, ParsesListQueries) {
  auto q = parse_list_query({{"prefix", "a b"}, {"start_after", "x"}, {"limit", "5"}});
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->prefix, "a b");
  EXPECT_EQ(q->start_after, "x");
  EXPECT_EQ(q->limit, 5u);
  EXPECT_FALSE(parse_list_query({{"limit", "-1"}}).is_ok());
  EXPECT_FALSE(parse_list_query({{"limit", "1"}, {"limit", "2"}}).is_ok());
  EXPECT_FALSE(parse_list_query({{"perfix", "a"}}).is_ok());
}

// --- appends -------------------------------------------------------------------

struct Decoded {
  uint64_t timestamp;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

std::vector<Decoded> records_of(const PayloadBuilder& payload) {
  std::vector<Decoded> out;
  RecordIterator it(payload.bytes(), payload.record_count(), BatchLimits{});
  RecordView view;
  while (it.next(&view)) {
    Decoded d{view.timestamp, {}, std::string(view.body)};
    HeaderIterator headers(view.headers, view.header_count);
    RecordHeader h;
    while (headers.next(&h)) d.headers.emplace_back(std::string(h.name), std::string(h.value));
    out.push_back(std::move(d));
  }
  EXPECT_TRUE(it.status().is_ok());
  return out;
}

TEST(RestAppend, EncodesJsonRecordsWithBodiesHeadersAndTimestamps) {
  auto in = parse_append_json(
      R"({"records":[{"body":"héllo","headers":[["k","v"],["k2",""]],"timestamp":1234},)"
      R"({"body_base64":"AP8=","headers_base64":[["AA==","/w=="]]},{}],"match_seq_num":7,"fencing_token":"t"})",
      {});
  ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  const std::vector<Decoded> records = records_of(in->payload);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].body, "héllo");
  EXPECT_EQ(records[0].timestamp, 1234u);
  ASSERT_EQ(records[0].headers.size(), 2u);
  EXPECT_EQ(records[0].headers[0], std::make_pair(std::string("k"), std::string("v")));
  EXPECT_EQ(records[1].body, std::string("\0\xFF", 2));
  EXPECT_EQ(records[1].headers[0], std::make_pair(std::string(1, '\0'), std::string("\xFF")));
  EXPECT_EQ(records[2].body, "");
  EXPECT_EQ(in->match_seq_num, 7u);
  EXPECT_EQ(in->fencing_token, "t");
  EXPECT_FALSE(in->producer.has_value());
}

TEST(RestAppend, RefusesMalformedJsonAppends) {
  for (const char* text : {
           "not json", R"({})", R"({"records":[]})", R"({"records":{}})", R"({"records":[1]})",
           R"({"records":[{"body":1}]})", R"({"records":[{"body":"a","body_base64":"YQ=="}]})",
           R"({"records":[{"body_base64":"!!"}]})", R"({"records":[{"headers":[["a"]]}]})",
           R"({"records":[{"headers":[["a",1]]}]})", R"({"records":[{"headers_base64":[["*","YQ=="]]}]})",
           R"({"records":[{"timestamp":-5}]})", R"({"records":[{"bodyy":"a"}]})",
           R"({"records":[{"body":"a"}],"match_seq_num":"3"})", R"({"records":[{"body":"a"}],"producer_id":1})",
           R"({"records":[{"body":"a"}],"extra":true})"}) {
    auto in = parse_append_json(text, {});
    ASSERT_FALSE(in.is_ok()) << text;
    EXPECT_EQ(in.status().code(), ErrorCode::kInvalidArgument) << text;
  }
}

TEST(RestAppend, TakesOptionsFromTheQueryButNotTwice) {
  auto in = parse_append_json(R"({"records":[{"body":"a"}]})",
                              {{"match_seq_num", "3"}, {"producer_id", "9"}, {"producer_seq", "1"}});
  ASSERT_TRUE(in.is_ok());
  EXPECT_EQ(in->match_seq_num, 3u);
  EXPECT_EQ(in->producer, std::make_pair(uint64_t{9}, uint64_t{1}));
  EXPECT_FALSE(parse_append_json(R"({"records":[{"body":"a"}],"match_seq_num":3})", {{"match_seq_num", "3"}}).is_ok());
  EXPECT_FALSE(parse_append_json(R"({"records":[{"body":"a"}]})", {{"match_seq_num", "x"}}).is_ok());
  EXPECT_FALSE(parse_append_json(R"({"records":[{"body":"a"}]})", {{"producer_seq", "1"}}).is_ok());
  EXPECT_FALSE(parse_append_json(R"({"records":[{"body":"a"}]})", {{"seq", "1"}}).is_ok());
}

TEST(RestAppend, SplitsTextIntoOneRecordPerLine) {
  auto in = parse_append_text("one\r\ntwo\n\nthree", {{"fencing_token", "f"}});
  ASSERT_TRUE(in.is_ok());
  const std::vector<Decoded> records = records_of(in->payload);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].body, "one");
  EXPECT_EQ(records[1].body, "two");
  EXPECT_EQ(records[2].body, "");
  EXPECT_EQ(records[3].body, "three");
  EXPECT_EQ(in->fencing_token, "f");
  EXPECT_EQ(records_of(parse_append_text("a\n", {})->payload).size(), 1u);  // A last '\n' ends a line.
  EXPECT_FALSE(parse_append_text("", {}).is_ok());
}

TEST(RestAppend, BuildsTheProtocolRequestWithItsChecksum) {
  auto in = parse_append_text("x\ny", {{"match_seq_num", "2"}});
  ASSERT_TRUE(in.is_ok());
  const std::string body = append_request("orders", "eu/1", *in);
  wire::Append m;
  ASSERT_TRUE(wire::decode_body(body, &m));
  EXPECT_EQ(m.bucket, "orders");
  EXPECT_EQ(m.stream, "eu/1");
  EXPECT_EQ(m.options, wire::Append::kHasMatchSeqNum);
  EXPECT_EQ(m.match_seq_num, 2u);
  EXPECT_EQ(m.record_count, 2u);
  EXPECT_EQ(m.payload_checksum, payload_checksum(m.payload));
}

// --- reads ---------------------------------------------------------------------

TEST(RestRead, ParsesStartsAndLimits) {
  auto q = parse_read_query({});
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->start, (wire::Start{wire::Start::kSeqNum, 0}));
  EXPECT_EQ(q->count, kReadCountMax);
  q = parse_read_query({{"timestamp", "1700"}, {"count", "5000"}, {"wait_ms", "250"}, {"until_timestamp", "9"}});
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->start, (wire::Start{wire::Start::kTimestamp, 1700}));
  EXPECT_EQ(q->count, kReadCountMax);
  EXPECT_EQ(q->wait_ms, 250u);
  EXPECT_EQ(q->until_timestamp, 9u);
  q = parse_read_query({{"tail_offset", "3"}});
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->start, (wire::Start{wire::Start::kTailOffset, 3}));
}

TEST(RestRead, RefusesBadReadQueries) {
  const QueryParams cases[] = {
      {{"seq_num", "1"}, {"timestamp", "2"}}, {{"count", "0"}},          {{"wait_ms", "60001"}},
      {{"seq_num", "-1"}},                    {{"seq_num", "1x"}},       {{"seq_num", ""}},
      {{"seq_num", "18446744073709551616"}},  {{"seq_num", "1"}, {"seq_num", "2"}}, {{"from", "1"}},
  };
  for (const QueryParams& params : cases) {
    auto q = parse_read_query(params);
    ASSERT_FALSE(q.is_ok()) << params[0].first << "=" << params[0].second;
    EXPECT_EQ(q.status().code(), ErrorCode::kInvalidArgument);
  }
}

wire::Batch batch_of(const PayloadBuilder& payload, uint64_t base_seq, uint64_t first_ts, uint64_t arrival_ts) {
  wire::Batch b;
  b.base_seq = base_seq;
  b.record_count = payload.record_count();
  b.first_timestamp = first_ts;
  b.arrival_timestamp = arrival_ts;
  b.payload = payload.bytes();
  b.payload_checksum = payload_checksum(b.payload);
  return b;
}

TEST(RestRead, RendersRecordsWithEffectiveTimestampsFromTheStartIndex) {
  PayloadBuilder first, second;
  first.add(100, "skipped");
  first.add(0, {{"h", "v"}}, "a");
  first.add(50, "b");
  second.add(0, {{"bin", std::string("\xFF", 1)}}, std::string("\xC3\x28", 2));
  wire::ReadAnswer answer;
  answer.tail = 4;
  answer.first_record_index = 1;
  answer.batches = {batch_of(first, 0, 100, 200), batch_of(second, 3, 300, 300)};
  auto j = records_json(answer, 10, 0);
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  const Json& records = (*j)["records"];
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["seq_num"], 1);
  EXPECT_EQ(records[0]["timestamp"], 200);  // None given: the arrival time.
  EXPECT_EQ(records[0]["body"], "a");
  EXPECT_EQ(records[0]["headers"], Json::parse(R"([["h","v"]])"));
  EXPECT_EQ(records[1]["timestamp"], 200);  // 50 is raised to the one before.
  EXPECT_EQ(records[2]["seq_num"], 3);
  EXPECT_EQ(records[2]["body_base64"], base64_encode(std::string("\xC3\x28", 2)));
  EXPECT_FALSE(records[2].contains("body"));
  EXPECT_EQ(records[2]["headers_base64"], Json::parse(R"([["Ymlu","/w=="]])"));
  EXPECT_EQ((*j)["tail"], 4);
}

TEST(RestRead, StopsAtCountAndAtTheUntilTimestamp) {
  PayloadBuilder p;
  for (uint64_t t = 10; t <= 50; t += 10) p.add(t, "r");
  wire::ReadAnswer answer;
  answer.batches = {batch_of(p, 0, 10, 10)};
  auto j = records_json(answer, 2, 0);
  ASSERT_TRUE(j.is_ok());
  EXPECT_EQ((*j)["records"].size(), 2u);
  j = records_json(answer, 10, 40);
  ASSERT_TRUE(j.is_ok());
  EXPECT_EQ((*j)["records"].size(), 3u);
}

TEST(RestRead, RefusesABatchThatFailsItsChecksumOrDoesNotDecode) {
  PayloadBuilder p;
  p.add(1, "r");
  wire::ReadAnswer answer;
  answer.batches = {batch_of(p, 0, 1, 1)};
  answer.batches[0].payload_checksum ^= 1;
  auto j = records_json(answer, 10, 0);
  ASSERT_FALSE(j.is_ok());
  EXPECT_EQ(j.status().code(), ErrorCode::kCorrupt);
  answer.batches = {batch_of(p, 0, 1, 1)};
  answer.batches[0].record_count = 2;
  j = records_json(answer, 10, 0);
  ASSERT_FALSE(j.is_ok());
  EXPECT_EQ(j.status().code(), ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace runnel::rest
