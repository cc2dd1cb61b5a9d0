// The admin port's JSON REST API against the real runneld (two shards,
// loopback ports of its own), with a plain HTTP client: every endpoint,
// stream names with '/', appends read back, long polls, tails, consumer lag
// while a librunnel subscriber lags, per-shard statistics, and every error
// class with its HTTP status.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "runnel/blocking_client.h"
#include "tests/integration/process.h"

namespace runnel::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// Above a batch's 1 MiB, so that the store's own limits are reachable too.
constexpr size_t kAdminBodyBytesMax = 2 << 20;

class RestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = RunneldProcess::start({"--data-dir", dir_.path() + "/data", "--listen", "127.0.0.1:0", "--admin-listen",
                                     "127.0.0.1:0", "--shards", "2"},
                                    {"RUNNEL_ADMIN_BODY_BYTES_MAX=" + std::to_string(kAdminBodyBytesMax)}, &error);
    ASSERT_NE(server_, nullptr) << error;
  }

  HttpReply http(const std::string& method, const std::string& target, const std::string& body = "",
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return http_request(server_->admin(), method, target, body, headers);
  }

  // The reply's body as JSON (a failure, and null, if it is not).
  static Json json_of(const HttpReply& r) {
    Json j = Json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.body;
    return j.is_discarded() ? Json() : j;
  }

  // Checks an error answer: its status and {"error":{"code":…,"message":…}}.
  static Json expect_error(const HttpReply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "", "application/json");
    Json j = json_of(r);
    if (!j.is_object() || !j.contains("error")) {
      ADD_FAILURE() << "no error object: " << r.body;
      return Json();
    }
    EXPECT_EQ(j["error"]["code"], code) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string()) << r.body;
    return j["error"];
  }

  void create_bucket(const std::string& name, const std::string& config = "") {
    const std::string body = config.empty() ? R"({"name":")" + name + R"("})"
                                            : R"({"name":")" + name + R"(","config":)" + config + "}";
    HttpReply r = http("POST", "/v1/buckets", body);
    ASSERT_EQ(r.status, 201) << r.body;
  }

  void create_stream(const std::string& bucket, const std::string& name_json) {
    HttpReply r = http("POST", "/v1/buckets/" + bucket + "/streams", R"({"name":)" + name_json + "}");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  Json append_json(const std::string& path, const std::string& body, int status = 200) {
    HttpReply r = http("POST", path + "/records", body);
    EXPECT_EQ(r.status, status) << r.body;
    return json_of(r);
  }

  TempDir dir_;
  std::unique_ptr<RunneldProcess> server_;
};

// Raw bytes on a fresh connection; everything the server sends until it closes.
std::string raw_exchange(int port, const std::string& bytes) {
  int fd = connect_loopback(port);
  if (fd < 0) {
    ADD_FAILURE() << "cannot connect";
    return "";
  }
  if (::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
    ADD_FAILURE() << "send failed";
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// Retries `check` until it holds or 10 s pass.
template <typename Check>
bool eventually(Check check) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return check();
}

// --- buckets ---------------------------------------------------------------------

TEST_F(RestTest, BucketsAreCreatedListedReadReconfiguredAndDeleted) {
  HttpReply r = http("POST", "/v1/buckets",
                     R"({"name":"orders","config":{"create_stream_on_append":true,)"
                     R"("default_stream_config":{"retention_age_ms":60000}}})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.headers["location"], "/v1/buckets/orders");
  Json j = json_of(r);
  EXPECT_EQ(j["name"], "orders");
  EXPECT_EQ(j["config"]["create_stream_on_append"], true);
  EXPECT_EQ(j["config"]["create_stream_on_read"], false);
  EXPECT_EQ(j["config"]["default_stream_config"]["retention_age_ms"], 60000);
  EXPECT_EQ(j["config"]["default_stream_config"]["timestamping"], "client-prefer");
  EXPECT_GT(j["created_ms"].get<uint64_t>(), 0u);
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders-eu"));
  ASSERT_NO_FATAL_FAILURE(create_bucket("users"));

  j = json_of(http("GET", "/v1/buckets"));
  ASSERT_EQ(j["buckets"].size(), 3u);
  EXPECT_EQ(j["buckets"][0]["name"], "orders");
  EXPECT_EQ(j["more"], false);
  j = json_of(http("GET", "/v1/buckets?prefix=orders&limit=1"));
  ASSERT_EQ(j["buckets"].size(), 1u);
  EXPECT_EQ(j["buckets"][0]["name"], "orders");
  EXPECT_EQ(j["more"], true);
  j = json_of(http("GET", "/v1/buckets?prefix=orders&start_after=orders"));
  ASSERT_EQ(j["buckets"].size(), 1u);
  EXPECT_EQ(j["buckets"][0]["name"], "orders-eu");

  r = http("GET", "/v1/buckets/orders");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json_of(r)["config"]["create_stream_on_append"], true);

  // PATCH merges the given fields into the current config.
  r = http("PATCH", "/v1/buckets/orders", R"({"config":{"create_stream_on_read":true,)"
                                          R"("default_stream_config":{"compress_lz4":true}}})");
  ASSERT_EQ(r.status, 200) << r.body;
  j = json_of(http("GET", "/v1/buckets/orders"));
  EXPECT_EQ(j["config"]["create_stream_on_append"], true);
  EXPECT_EQ(j["config"]["create_stream_on_read"], true);
  EXPECT_EQ(j["config"]["default_stream_config"]["retention_age_ms"], 60000);
  EXPECT_EQ(j["config"]["default_stream_config"]["compress_lz4"], true);

  r = http("DELETE", "/v1/buckets/users");
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_TRUE(r.body.empty());
  expect_error(http("GET", "/v1/buckets/users"), 404, "not_found");
  expect_error(http("DELETE", "/v1/buckets/users"), 404, "not_found");
}

TEST_F(RestTest, BucketErrorsHaveTheirStatus) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders"));
  expect_error(http("POST", "/v1/buckets", R"({"name":"orders"})"), 409, "already_exists");
  expect_error(http("POST", "/v1/buckets", R"({"name":"No_Such Name"})"), 400, "invalid_argument");
  expect_error(http("POST", "/v1/buckets", R"({"config":{}})"), 400, "invalid_argument");
  expect_error(http("POST", "/v1/buckets", R"({"name":"x-y-z","config":{"bogus":1}})"), 400, "invalid_argument");
  expect_error(http("PATCH", "/v1/buckets/orders", R"({"config":{"create_stream_on_read":"yes"}})"), 400,
               "invalid_argument");
  expect_error(http("PATCH", "/v1/buckets/nothere", R"({"config":{}})"), 404, "not_found");
  // A bucket that holds streams is not deleted (409, like S3's BucketNotEmpty).
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("s")"));
  expect_error(http("DELETE", "/v1/buckets/orders"), 409, "already_exists");
}

// --- streams ---------------------------------------------------------------------

TEST_F(RestTest, StreamsAreCreatedListedReadReconfiguredAndDeleted) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders", R"({"default_stream_config":{"retention_bytes":1000000}})"));
  // No config: the bucket's default.
  HttpReply r = http("POST", "/v1/buckets/orders/streams", R"({"name":"eu/west/1"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.headers["location"], "/v1/buckets/orders/streams/eu%2Fwest%2F1");
  Json j = json_of(r);
  EXPECT_EQ(j["bucket"], "orders");
  EXPECT_EQ(j["name"], "eu/west/1");
  EXPECT_EQ(j["config"]["retention_bytes"], 1000000);
  EXPECT_EQ(j["tail"], 0);
  // A partial config: the given fields over the bucket's default.
  r = http("POST", "/v1/buckets/orders/streams", R"({"name":"a b%c","config":{"timestamping":"arrival"}})");
  ASSERT_EQ(r.status, 201) << r.body;
  j = json_of(r);
  EXPECT_EQ(j["config"]["timestamping"], "arrival");
  EXPECT_EQ(j["config"]["retention_bytes"], 1000000);
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("zeta")"));

  j = json_of(http("GET", "/v1/buckets/orders/streams"));
  ASSERT_EQ(j["streams"].size(), 3u);
  EXPECT_EQ(j["streams"][0]["name"], "a b%c");
  EXPECT_EQ(j["streams"][1]["name"], "eu/west/1");
  j = json_of(http("GET", "/v1/buckets/orders/streams?prefix=eu%2F&limit=10"));
  ASSERT_EQ(j["streams"].size(), 1u);
  EXPECT_EQ(j["more"], false);
  j = json_of(http("GET", "/v1/buckets/orders/streams?start_after=eu%2Fwest%2F1"));
  ASSERT_EQ(j["streams"].size(), 1u);
  EXPECT_EQ(j["streams"][0]["name"], "zeta");

  r = http("GET", "/v1/buckets/orders/streams/a%20b%25c");
  ASSERT_EQ(r.status, 200) << r.body;
  j = json_of(r);
  EXPECT_EQ(j["name"], "a b%c");
  EXPECT_EQ(j["subscriptions"], Json::array());
  EXPECT_TRUE(j["shard"].is_number_unsigned());

  r = http("PATCH", "/v1/buckets/orders/streams/eu%2Fwest%2F1", R"({"config":{"retention_age_ms":5000}})");
  ASSERT_EQ(r.status, 200) << r.body;
  j = json_of(http("GET", "/v1/buckets/orders/streams/eu%2Fwest%2F1"));
  EXPECT_EQ(j["config"]["retention_age_ms"], 5000);
  EXPECT_EQ(j["config"]["retention_bytes"], 1000000);

  EXPECT_EQ(http("DELETE", "/v1/buckets/orders/streams/eu%2Fwest%2F1").status, 204);
  expect_error(http("GET", "/v1/buckets/orders/streams/eu%2Fwest%2F1"), 404, "not_found");
  // Unencoded, the '/' splits the path: no such route.
  expect_error(http("GET", "/v1/buckets/orders/streams/eu/west/1"), 404, "not_found");
}

TEST_F(RestTest, StreamErrorsHaveTheirStatus) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders"));
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("s")"));
  expect_error(http("POST", "/v1/buckets/orders/streams", R"({"name":"s"})"), 409, "already_exists");
  expect_error(http("POST", "/v1/buckets/nothere/streams", R"({"name":"s"})"), 404, "not_found");
  expect_error(http("POST", "/v1/buckets/orders/streams", R"({"name":""})"), 400, "invalid_argument");
  expect_error(http("POST", "/v1/buckets/orders/streams", R"({"name":"x","config":{"timestamping":"late"}})"), 400,
               "invalid_argument");
  expect_error(http("GET", "/v1/buckets/nothere/streams"), 404, "not_found");
  expect_error(http("GET", "/v1/buckets/orders/streams/nothere"), 404, "not_found");
  expect_error(http("DELETE", "/v1/buckets/orders/streams/nothere"), 404, "not_found");
  expect_error(http("PATCH", "/v1/buckets/orders/streams/s", R"({"cfg":{}})"), 400, "invalid_argument");
  expect_error(http("GET", "/v1/buckets/orders/streams/bad%2"), 400, "invalid_argument");
}

// --- records ---------------------------------------------------------------------

TEST_F(RestTest, JsonAppendsReadBackWithHeadersTimestampsAndBinaryBodies) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders"));
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("eu/1")"));
  const std::string path = "/v1/buckets/orders/streams/eu%2F1";
  Json ack = append_json(path, R"({"records":[{"body":"héllo","headers":[["k","v"]],"timestamp":1000},)"
                               R"({"body_base64":"AP8=","timestamp":900},{"body":"later","timestamp":2000}]})");
  EXPECT_EQ(ack["start_seq"], 0);
  EXPECT_EQ(ack["end_seq"], 3);
  EXPECT_EQ(ack["start_timestamp"], 1000);
  EXPECT_EQ(ack["end_timestamp"], 2000);
  EXPECT_EQ(ack["tail"], 3);

  HttpReply r = http("GET", path + "/records?seq_num=0");
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = json_of(r);
  EXPECT_EQ(j["tail"], 3);
  ASSERT_EQ(j["records"].size(), 3u);
  EXPECT_EQ(j["records"][0]["seq_num"], 0);
  EXPECT_EQ(j["records"][0]["timestamp"], 1000);
  EXPECT_EQ(j["records"][0]["body"], "héllo");
  EXPECT_EQ(j["records"][0]["headers"], Json::parse(R"([["k","v"]])"));
  EXPECT_EQ(j["records"][1]["timestamp"], 1000);  // 900 is raised: timestamps never decrease.
  EXPECT_EQ(j["records"][1]["body_base64"], "AP8=");
  EXPECT_FALSE(j["records"][1].contains("body"));
  EXPECT_EQ(j["records"][2]["timestamp"], 2000);

  j = json_of(http("GET", path + "/records?seq_num=1&count=1"));
  ASSERT_EQ(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["seq_num"], 1);
  j = json_of(http("GET", path + "/records?tail_offset=1"));
  ASSERT_EQ(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["body"], "later");
  j = json_of(http("GET", path + "/records?timestamp=1500"));
  ASSERT_EQ(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["seq_num"], 2);
  // HEAD: the headers of the GET, no body.
  r = http("HEAD", path + "/records");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());

  r = http("GET", path + "/tail");
  ASSERT_EQ(r.status, 200) << r.body;
  j = json_of(r);
  EXPECT_EQ(j["tail"], 3);
  EXPECT_EQ(j["last_timestamp"], 2000);
}

TEST_F(RestTest, TextAppendsAreOneRecordPerLine) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("logs"));
  ASSERT_NO_FATAL_FAILURE(create_stream("logs", R"("app")"));
  HttpReply r = http("POST", "/v1/buckets/logs/streams/app/records", "first\nsecond\r\nthird\n",
                     {{"Content-Type", "text/plain; charset=utf-8"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json_of(r)["end_seq"], 3);
  // Options in the query: match_seq_num must be the tail.
  r = http("POST", "/v1/buckets/logs/streams/app/records?match_seq_num=3", "fourth", {{"Content-Type", "text/plain"}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = json_of(http("GET", "/v1/buckets/logs/streams/app/records"));
  ASSERT_EQ(j["records"].size(), 4u);
  EXPECT_EQ(j["records"][1]["body"], "second");
  EXPECT_EQ(j["records"][3]["body"], "fourth");
  EXPECT_EQ(j["records"][0]["headers"], Json::array());
}

TEST_F(RestTest, ALongPollAnswersWhenARecordLands) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders"));
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("s")"));
  // Nothing comes: the wait ends empty, with the tail.
  Json j = json_of(http("GET", "/v1/buckets/orders/streams/s/records?seq_num=0&wait_ms=200"));
  EXPECT_EQ(j["records"], Json::array());
  EXPECT_EQ(j["tail"], 0);

  const HostPortText admin = server_->admin();
  auto poll = std::async(std::launch::async, [admin] {
    return http_request(admin, "GET", "/v1/buckets/orders/streams/s/records?seq_num=0&wait_ms=4000");
  });
  // Appends until the poll has answered (the first may land before the poll waits).
  while (poll.wait_for(100ms) != std::future_status::ready) {
    append_json("/v1/buckets/orders/streams/s", R"({"records":[{"body":"wake"}]})");
  }
  HttpReply r = poll.get();
  ASSERT_EQ(r.status, 200) << r.body;
  j = json_of(r);
  ASSERT_GE(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["body"], "wake");
}

TEST_F(RestTest, SealTrimAndFenceChangeWhatAppendsAndReadsMay) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders"));
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("s")"));
  const std::string path = "/v1/buckets/orders/streams/s";
  for (int i = 0; i < 5; i++) append_json(path, R"({"records":[{"body":"r"}]})");

  // match_seq_num: 409 with the tail.
  Json e = expect_error(http("POST", path + "/records", R"({"records":[{"body":"x"}],"match_seq_num":2})"), 409,
                        "seq_num_mismatch");
  EXPECT_EQ(e["tail"], 5);
  // A start beyond the tail: 416 with the tail.
  e = expect_error(http("GET", path + "/records?seq_num=9"), 416, "out_of_range");
  EXPECT_EQ(e["tail"], 5);

  HttpReply r = http("POST", path + "/trim", R"({"trim_seq":3})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json_of(r)["trim_seq"], 3);
  Json j = json_of(http("GET", path + "/records?seq_num=0"));
  ASSERT_FALSE(j["records"].empty());
  EXPECT_EQ(j["records"][0]["seq_num"], 3);
  expect_error(http("POST", path + "/trim", R"({"trim_seq":"3"})"), 400, "invalid_argument");
  expect_error(http("POST", path + "/trim", R"({})"), 400, "invalid_argument");

  r = http("POST", path + "/fence", R"({"token":"me"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json_of(r)["fenced"], true);
  expect_error(http("POST", path + "/records", R"({"records":[{"body":"x"}]})"), 409, "fencing_token_mismatch");
  expect_error(http("POST", path + "/records", R"({"records":[{"body":"x"}],"fencing_token":"you"})"), 409,
               "fencing_token_mismatch");
  append_json(path, R"({"records":[{"body":"x"}],"fencing_token":"me"})");
  r = http("POST", path + "/records?fencing_token=me", "y", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(r.status, 200) << r.body;
  r = http("POST", path + "/fence", R"({"token":""})");
  EXPECT_EQ(json_of(r)["fenced"], false);

  r = http("POST", path + "/seal");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json_of(r)["sealed"], true);
  expect_error(http("POST", path + "/records", R"({"records":[{"body":"x"}]})"), 409, "stream_sealed");
  EXPECT_EQ(json_of(http("GET", path + "/tail"))["tail"], 7);
}

// --- HTTP-level errors --------------------------------------------------------------

TEST_F(RestTest, BadRequestsGetTheirStatus) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders"));
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("s")"));
  const std::string path = "/v1/buckets/orders/streams/s";
  // Bad JSON and bodies that are not what the route takes.
  expect_error(http("POST", "/v1/buckets", "{not json"), 400, "invalid_argument");
  expect_error(http("POST", "/v1/buckets", "[1,2]"), 400, "invalid_argument");
  expect_error(http("POST", path + "/records", R"({"records":[]})"), 400, "invalid_argument");
  expect_error(http("POST", path + "/records", R"({"records":[{"body":"a","color":"red"}]})"), 400,
               "invalid_argument");
  expect_error(http("POST", path + "/records", "", {{"Content-Type", "text/plain"}}), 400, "invalid_argument");
  expect_error(http("GET", path + "/records?seq_num=1&timestamp=2"), 400, "invalid_argument");
  expect_error(http("GET", path + "/records?wait_ms=600000"), 400, "invalid_argument");
  expect_error(http("GET", path + "/records?bogus=1"), 400, "invalid_argument");
  expect_error(http("GET", path + "/tail?x=1"), 400, "invalid_argument");
  expect_error(http("GET", "/v1/buckets?limit=%zz"), 400, "invalid_argument");
  expect_error(http("GET", "/v1/buckets/orders/streams/nothere/records"), 404, "not_found");
  expect_error(http("GET", "/v1/buckets/orders/streams/nothere/tail"), 404, "not_found");

  // Unknown routes.
  expect_error(http("GET", "/v1/nothing"), 404, "not_found");
  expect_error(http("GET", path + "/what"), 404, "not_found");
  expect_error(http("GET", "/v2/buckets"), 404, "not_found");

  // Wrong methods: 405 with Allow.
  struct Case {
    const char* method;
    std::string target;
    const char* allow;
  };
  const Case cases[] = {
      {"DELETE", "/v1/buckets", "GET, HEAD, POST"},
      {"POST", "/v1/buckets/orders", "GET, HEAD, PATCH, DELETE"},
      {"PUT", path, "GET, HEAD, PATCH, DELETE"},
      {"DELETE", path + "/records", "GET, HEAD, POST"},
      {"POST", path + "/tail", "GET, HEAD"},
      {"GET", path + "/seal", "POST"},
      {"POST", "/v1/shards", "GET, HEAD"},
  };
  for (const Case& c : cases) {
    HttpReply r = http(c.method, c.target);
    expect_error(r, 405, "method_not_allowed");
    EXPECT_EQ(r.headers["allow"], c.allow) << c.method << " " << c.target;
  }

  // A record over the server's limit (1 MiB): 413 too_large.
  expect_error(http("POST", path + "/records", std::string((1 << 20) + 1, 'r'), {{"Content-Type", "text/plain"}}), 413,
               "too_large");
  // A body over admin.body_bytes_max: 413 before the body is read.
  const std::string raw = raw_exchange(server_->admin().port,
                                       "POST " + path + "/records HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                           std::to_string(kAdminBodyBytesMax + 1) + "\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 413 ", 0), 0u) << raw;
  // Bytes that are not HTTP: 400.
  const std::string garbage = raw_exchange(server_->admin().port, "\x01\x02 not http\r\n\r\n");
  EXPECT_EQ(garbage.rfind("HTTP/1.1 400 ", 0), 0u) << garbage;
  // The server still serves.
  EXPECT_EQ(http("GET", path + "/tail").status, 200);
}

// --- consumer lag and shards -------------------------------------------------------

TEST_F(RestTest, ConsumerLagAndShardStatisticsAreVisible) {
  ASSERT_NO_FATAL_FAILURE(create_bucket("orders"));
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("lag/1")"));
  ASSERT_NO_FATAL_FAILURE(create_stream("orders", R"("other")"));
  const std::string path = "/v1/buckets/orders/streams/lag%2F1";
  for (int i = 0; i < 10; i++) append_json(path, R"({"records":[{"body":"0123456789"}]})");
  // The last minute's append rate: 10 records in it; a stream with none shows 0.
  Json rate = json_of(http("GET", path))["append_rate"];
  EXPECT_GE(rate["records_per_s"].get<double>(), 10.0 / 60.0 - 1e-9) << rate.dump();
  EXPECT_GE(rate["bytes_per_s"].get<double>(), 10.0 * (72 + 12) / 60.0 - 1e-9) << rate.dump();
  Json idle = json_of(http("GET", "/v1/buckets/orders/streams/other"))["append_rate"];
  EXPECT_EQ(idle["records_per_s"].get<double>(), 0.0) << idle.dump();
  EXPECT_EQ(idle["bytes_per_s"].get<double>(), 0.0) << idle.dump();

  client::ClientOptions options;
  options.port = static_cast<uint16_t>(server_->binary().port);
  client::BlockingClient client(options);
  // One byte of credit: the server sends one batch, then waits for more.
  auto sub = client.subscribe("orders", "lag/1", {.start = client::Start::seq_num(0), .credit_bytes = 1});
  ASSERT_NE(sub, nullptr);

  Json sub_json;
  auto subscription = [&]() -> Json {
    Json j = json_of(http("GET", path));
    return j["subscriptions"].size() == 1 ? j["subscriptions"][0] : Json();
  };
  ASSERT_TRUE(eventually([&] {
    sub_json = subscription();
    return sub_json.is_object() && sub_json["next_seq_num"] == 1;
  })) << sub_json.dump();
  EXPECT_EQ(sub_json["lag"], 9);
  EXPECT_EQ(sub_json["credit_bytes"], 0);

  Json shards = json_of(http("GET", "/v1/shards"));
  ASSERT_EQ(shards["shards"].size(), 2u);
  uint64_t streams = 0, subscriptions = 0, appends = 0;
  bool tail_seen = false;
  for (const Json& s : shards["shards"]) {
    streams += s["streams"].get<uint64_t>();
    subscriptions += s["subscriptions"].get<uint64_t>();
    appends += s["appends"].get<uint64_t>();
    EXPECT_TRUE(s["stored_bytes"].is_number_unsigned());
    EXPECT_TRUE(s["reads"].is_number_unsigned());
    for (const Json& t : s["stream_tails"]) {
      if (t["name"] == "lag/1") {
        EXPECT_EQ(t["tail"], 10);
        EXPECT_GT(t["stored_bytes"].get<uint64_t>(), 100u);
        tail_seen = true;
      }
    }
  }
  EXPECT_EQ(streams, 2u);
  EXPECT_EQ(subscriptions, 1u);
  EXPECT_GE(appends, 10u);
  EXPECT_TRUE(tail_seen) << shards.dump();
  EXPECT_EQ(json_of(http("GET", "/v1/shards?streams=0"))["shards"][0]["stream_tails"], Json::array());

  // The subscriber catches up: its lag goes to 0.
  for (int i = 0; i < 10; i++) {
    auto record = sub->next(10s);
    ASSERT_TRUE(record.ok()) << record.status().to_string();
    EXPECT_EQ(record->seq_num, static_cast<uint64_t>(i));
  }
  ASSERT_TRUE(eventually([&] {
    sub_json = subscription();
    return sub_json.is_object() && sub_json["lag"] == 0;
  })) << sub_json.dump();
  EXPECT_EQ(sub_json["next_seq_num"], 10);

  sub.reset();  // Unsubscribes.
  ASSERT_TRUE(eventually([&] { return json_of(http("GET", path))["subscriptions"].empty(); }));
}

}  // namespace
}  // namespace runnel::testing
