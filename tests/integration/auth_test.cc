// Access control against the real runneld started with --auth (two shards,
// loopback ports of its own): the root token file, and a matrix of every
// operation x {no token, wrong scope, right scope, expired, revoked} on both
// ports — librunnel on the binary port, plain HTTP with a bearer header on
// the admin port — each with a token that holds only the operation under
// test. Then: listings show only what a token may see, a token issues only
// narrower tokens, auto-prefixing, an open subscription ends within a
// second of its token's revocation, revocation survives a restart, and
// /health and /ready stay open while /metrics does not.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "runnel/blocking_client.h"
#include "tests/integration/process.h"

namespace runnel::testing {
namespace {

using Json = nlohmann::json;
using client::BlockingClient;
using client::ErrorCode;
using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }

  void start() {
    std::string error;
    server_ = RunneldProcess::start({"--auth", "--data-dir", dir_.path() + "/data", "--listen", "127.0.0.1:0",
                                     "--admin-listen", "127.0.0.1:0", "--shards", "2"},
                                    {}, &error);
    ASSERT_NE(server_, nullptr) << error;
    std::string text = read_file(dir_.path() + "/data/root-token");
    ASSERT_FALSE(text.empty());
    ASSERT_EQ(text.back(), '\n');
    root_secret_ = text.substr(0, text.size() - 1);
    root_ = client_for(root_secret_);
  }

  std::unique_ptr<BlockingClient> client_for(const std::string& secret) {
    return std::make_unique<BlockingClient>(client::ClientOptions{.host = "127.0.0.1",
                                                                  .port = static_cast<uint16_t>(server_->binary().port),
                                                                  .token = secret,
                                                                  .client_name = "auth-test",
                                                                  .request_timeout_ms = 10000});
  }

  // Issues a token (as root) and returns its secret.
  std::string issue(client::TokenInfo spec) {
    auto issued = root_->issue_token(spec);
    EXPECT_TRUE(issued.ok()) << issued.status().to_string();
    return issued.ok() ? issued->token : "";
  }

  HttpReply http(const std::string& secret, const std::string& method, const std::string& target,
                 const std::string& body = "") {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!secret.empty()) headers.emplace_back("Authorization", "Bearer " + secret);
    return http_request(server_->admin(), method, target, body, headers);
  }

  TempDir dir_;
  std::unique_ptr<RunneldProcess> server_;
  std::string root_secret_;
  std::unique_ptr<BlockingClient> root_;
};

TEST_F(AuthTest, TheRootTokenFileIsPrivateAndItsSecretNeverLogged) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() + "/data/root-token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(root_secret_.rfind("root.", 0), 0u);
  auto tokens = root_->list_tokens();
  ASSERT_TRUE(tokens.ok()) << tokens.status().to_string();
  ASSERT_EQ(tokens->items.size(), 1u);
  EXPECT_EQ(tokens->items[0].id, "root");
  EXPECT_EQ(tokens->items[0].ops, kOpsAll);
  const std::string log = server_->stderr_text();
  EXPECT_NE(log.find("root-token"), std::string::npos);
  EXPECT_EQ(log.find(root_secret_.substr(5)), std::string::npos);
  // A restart keeps the root token and writes no new one.
  ASSERT_TRUE(server_->stop(SIGTERM).has_value());
  const std::string before = read_file(dir_.path() + "/data/root-token");
  start();
  EXPECT_EQ(read_file(dir_.path() + "/data/root-token"), before);
  EXPECT_TRUE(root_->list_buckets().ok());
}

// One operation of the matrix: what it needs, how it runs on each port.
struct Fixture;
struct MatrixOp {
  const char* name;
  uint32_t op;  // The one operation its token holds.
  // Runs it through librunnel / HTTP with names made for run `n`; returns
  // the outcome. `setup` (as root) first makes what the run needs.
  std::function<void(Fixture&, int n)> setup;
  std::function<client::Status(BlockingClient&, int n)> binary;
  std::function<HttpReply(Fixture&, const std::string& secret, int n)> http;
  // Listings answer a token outside the scope with what it may see (none of
  // the fixture's), not an error.
  std::function<bool(BlockingClient&)> sees_nothing_binary = nullptr;
  std::function<bool(const HttpReply&)> sees_nothing_http = nullptr;
};

struct Fixture {
  AuthTest* test;
  BlockingClient& root;
  std::function<HttpReply(const std::string&, const std::string&, const std::string&, const std::string&)> http;
};

std::string id(const char* what, int n) { return fmt::format("in-{}-{}", what, n); }

template <typename T>
client::Status status_of(const client::Result<T>& r) {
  return r.ok() ? client::Status() : r.status();
}

std::vector<MatrixOp> matrix_ops() {
  using client::Status;
  const std::string b = "/v1/buckets/in-a";
  const std::string s = b + "/streams/s";
  auto make_stream = [](const char* what) {
    return [what](Fixture& f, int n) { ASSERT_TRUE(f.root.create_stream("in-a", id(what, n)).ok()); };
  };
  auto nothing = [](Fixture&, int) {};
  return {
      {"create-bucket", kOpCreateBucket, nothing,
       [](BlockingClient& c, int n) { return status_of(c.create_bucket(id("cb", n))); },
       [](Fixture& f, const std::string& k, int n) {
         return f.http(k, "POST", "/v1/buckets", R"({"name":")" + id("cb", n) + R"("})");
       }},
      {"get-bucket", kOpRead, nothing, [](BlockingClient& c, int) { return status_of(c.get_bucket("in-a")); },
       [b](Fixture& f, const std::string& k, int) { return f.http(k, "GET", b, ""); }},
      {"list-buckets", kOpRead, nothing, [](BlockingClient& c, int) { return status_of(c.list_buckets()); },
       [](Fixture& f, const std::string& k, int) { return f.http(k, "GET", "/v1/buckets", ""); },
       [](BlockingClient& c) {
         auto page = c.list_buckets();
         return page.ok() && page->items.empty();
       },
       [](const HttpReply& r) { return r.status == 200 && Json::parse(r.body)["buckets"].empty(); }},
      {"reconfigure-bucket", kOpReconfigureBucket, nothing,
       [](BlockingClient& c, int) { return status_of(c.reconfigure_bucket("in-a", {})); },
       // PATCH reads the bucket first: describing needs any operation, which it has.
       [b](Fixture& f, const std::string& k, int) {
         return f.http(k, "PATCH", b, R"({"config":{"create_stream_on_read":false}})");
       }},
      {"delete-bucket", kOpDeleteBucket, [](Fixture& f, int n) { ASSERT_TRUE(f.root.create_bucket(id("db", n)).ok()); },
       [](BlockingClient& c, int n) { return c.delete_bucket(id("db", n)); },
       [](Fixture& f, const std::string& k, int n) { return f.http(k, "DELETE", "/v1/buckets/" + id("db", n), ""); }},
      {"create-stream", kOpCreateStream, nothing,
       [](BlockingClient& c, int n) { return status_of(c.create_stream("in-a", id("cs", n))); },
       [b](Fixture& f, const std::string& k, int n) {
         return f.http(k, "POST", b + "/streams", R"({"name":")" + id("cs", n) + R"("})");
       }},
      {"get-stream", kOpRead, nothing, [](BlockingClient& c, int) { return status_of(c.get_stream("in-a", "s")); },
       [s](Fixture& f, const std::string& k, int) { return f.http(k, "GET", s, ""); }},
      {"list-streams", kOpRead, nothing, [](BlockingClient& c, int) { return status_of(c.list_streams("in-a")); },
       [b](Fixture& f, const std::string& k, int) { return f.http(k, "GET", b + "/streams", ""); }},
      {"reconfigure-stream", kOpReconfigureStream, nothing,
       [](BlockingClient& c, int) { return status_of(c.reconfigure_stream("in-a", "s", {})); },
       [s](Fixture& f, const std::string& k, int) {
         return f.http(k, "PATCH", s, R"({"config":{"retention_age_ms":0}})");
       }},
      {"delete-stream", kOpDeleteStream, make_stream("ds"),
       [](BlockingClient& c, int n) { return c.delete_stream("in-a", id("ds", n)); },
       [b](Fixture& f, const std::string& k, int n) { return f.http(k, "DELETE", b + "/streams/" + id("ds", n), ""); }},
      {"seal-stream", kOpSealStream, make_stream("ss"),
       [](BlockingClient& c, int n) { return status_of(c.seal_stream("in-a", id("ss", n))); },
       [b](Fixture& f, const std::string& k, int n) {
         return f.http(k, "POST", b + "/streams/" + id("ss", n) + "/seal", "");
       }},
      {"trim-stream", kOpTrimStream, nothing,
       [](BlockingClient& c, int) { return status_of(c.trim_stream("in-a", "s", 0)); },
       [s](Fixture& f, const std::string& k, int) { return f.http(k, "POST", s + "/trim", R"({"trim_seq":0})"); }},
      {"fence-stream", kOpFenceStream, nothing,
       [](BlockingClient& c, int) { return status_of(c.fence_stream("in-a", "f", "")); },
       [b](Fixture& f, const std::string& k, int) {
         return f.http(k, "POST", b + "/streams/f/fence", R"({"token":""})");
       }},
      {"check-tail", kOpRead, nothing, [](BlockingClient& c, int) { return status_of(c.check_tail("in-a", "s")); },
       [s](Fixture& f, const std::string& k, int) { return f.http(k, "GET", s + "/tail", ""); }},
      {"append", kOpAppend, nothing,
       [](BlockingClient& c, int) { return status_of(c.append("in-a", "s", {{.body = "x"}})); },
       [s](Fixture& f, const std::string& k, int) {
         return f.http(k, "POST", s + "/records", R"({"records":[{"body":"x"}]})");
       }},
      {"read", kOpRead, nothing, [](BlockingClient& c, int) { return status_of(c.read("in-a", "s")); },
       [s](Fixture& f, const std::string& k, int) { return f.http(k, "GET", s + "/records", ""); }},
      {"subscribe", kOpRead, nothing,
       [](BlockingClient& c, int) {
         auto sub = c.subscribe("in-a", "s");
         auto first = sub->next(5s);  // The fixture's stream holds a record.
         return first.ok() ? client::Status() : first.status();
       },
       nullptr},
      {"issue-token", kOpIssueToken | kOpRead, nothing,
       [](BlockingClient& c, int n) {
         client::TokenInfo t;
         t.id = id("it", n);
         t.buckets = NameScope::parse("in-*");
         t.tokens = NameScope::parse("in-*");
         t.ops = kOpRead;
         return status_of(c.issue_token(t));
       },
       [](Fixture& f, const std::string& k, int n) {
         return f.http(k, "POST", "/v1/tokens",
                       R"({"id":")" + id("it", n) + R"(","buckets":"in-*","tokens":"in-*","ops":["read"]})");
       }},
      {"list-tokens", kOpListTokens, nothing, [](BlockingClient& c, int) { return status_of(c.list_tokens()); },
       [](Fixture& f, const std::string& k, int) { return f.http(k, "GET", "/v1/tokens", ""); },
       [](BlockingClient& c) {
         auto page = c.list_tokens();
         return page.ok() && page->items.empty();
       },
       [](const HttpReply& r) { return r.status == 200 && Json::parse(r.body)["tokens"].empty(); }},
      {"revoke-token", kOpRevokeToken,
       [](Fixture& f, int n) {
         client::TokenInfo t;
         t.id = id("rt", n);
         t.ops = kOpRead;
         ASSERT_TRUE(f.root.issue_token(t).ok());
       },
       [](BlockingClient& c, int n) { return status_of(c.revoke_token(id("rt", n))); },
       [](Fixture& f, const std::string& k, int n) { return f.http(k, "DELETE", "/v1/tokens/" + id("rt", n), ""); }},
  };
}

TEST_F(AuthTest, EveryOperationOnBothPortsNeedsAValidTokenInScope) {
  ASSERT_TRUE(root_->create_bucket("in-a").ok());
  ASSERT_TRUE(root_->create_stream("in-a", "s").ok());
  ASSERT_TRUE(root_->create_stream("in-a", "f").ok());
  ASSERT_TRUE(root_->append("in-a", "s", {{.body = "first"}}).ok());
  Fixture f{this, *root_,
            [this](const std::string& k, const std::string& m, const std::string& t, const std::string& body) {
              return http(k, m, t, body);
            }};
  const std::vector<MatrixOp> ops = matrix_ops();
  enum Column { kRight, kWrong, kExpired, kRevoked, kColumns };
  const char* column_names[] = {"right scope", "wrong scope", "expired", "revoked"};
  // Per op and column, a token holding only that op; "wrong scope" reaches
  // other buckets, streams and token ids.
  std::vector<std::array<std::string, kColumns>> secrets(ops.size());
  const auto now_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  for (size_t i = 0; i < ops.size(); i++) {
    for (int c = 0; c < kColumns; c++) {
      client::TokenInfo t;
      t.id = fmt::format("m{}-{}", i, c);
      t.ops = ops[i].op;
      const bool wrong = c == kWrong;
      t.buckets = NameScope::parse(wrong ? "zz-*" : "in-*");
      t.streams = NameScope::parse(wrong ? "zz-*" : "*");
      t.tokens = NameScope::parse(wrong ? "zz-*" : "in-*");
      if (c == kExpired) t.expires_ms = now_ms + 3000;
      secrets[i][c] = issue(t);
    }
  }
  // Runs op i with `secret` on both ports; `expect`: OK, or the code.
  int run = 0;
  auto check = [&](size_t i, const std::string& secret, ErrorCode expect, int http_status, const char* column) {
    const MatrixOp& op = ops[i];
    SCOPED_TRACE(fmt::format("{} with {}", op.name, column));
    const int n = run++;
    op.setup(f, n);
    auto c = client_for(secret);
    const bool filtered = expect == ErrorCode::kPermissionDenied && op.sees_nothing_binary != nullptr;
    if (filtered) {
      EXPECT_TRUE(op.sees_nothing_binary(*c));
    } else {
      client::Status st = op.binary(*c, n);
      EXPECT_EQ(st.code(), expect) << st.to_string();
      if (expect == ErrorCode::kPermissionDenied) {
        EXPECT_NE(st.message().find("may not"), std::string::npos) << st.message();
      }
    }
    if (!op.http) return;
    const int m = run++;
    op.setup(f, m);
    HttpReply r = op.http(f, secret, m);
    if (filtered) {
      EXPECT_TRUE(op.sees_nothing_http(r)) << r.body;
    } else if (expect == ErrorCode::kOk) {
      EXPECT_GE(r.status, 200) << r.body;
      EXPECT_LT(r.status, 300) << r.body;
    } else {
      EXPECT_EQ(r.status, http_status) << r.body;
      if (http_status == 401) {
        EXPECT_EQ(r.headers["www-authenticate"], "Bearer realm=\"runnel\"");
      }
    }
  };
  for (size_t i = 0; i < ops.size(); i++) {
    check(i, "", ErrorCode::kUnauthenticated, 401, "no token");
    check(i, "nobody.AAAA", ErrorCode::kUnauthenticated, 401, "an unknown token");
    check(i, secrets[i][kWrong], ErrorCode::kPermissionDenied, 403, column_names[kWrong]);
    check(i, secrets[i][kRight], ErrorCode::kOk, 200, column_names[kRight]);
  }
  for (size_t i = 0; i < ops.size(); i++) {
    ASSERT_TRUE(root_->revoke_token(fmt::format("m{}-{}", i, int{kRevoked})).ok());
  }
  // Past the expiry (3 s after the tokens were made).
  while (std::chrono::system_clock::now().time_since_epoch() < std::chrono::milliseconds(now_ms + 3200)) {
    std::this_thread::sleep_for(50ms);
  }
  for (size_t i = 0; i < ops.size(); i++) {
    check(i, secrets[i][kExpired], ErrorCode::kUnauthenticated, 401, column_names[kExpired]);
    check(i, secrets[i][kRevoked], ErrorCode::kUnauthenticated, 401, column_names[kRevoked]);
  }
}

TEST_F(AuthTest, ListingsShowOnlyWhatTheTokenMaySee) {
  for (const char* bucket : {"logs-eu", "logs-us", "metrics"}) ASSERT_TRUE(root_->create_bucket(bucket).ok());
  for (const char* stream : {"web-1", "web-2", "db-1"}) ASSERT_TRUE(root_->create_stream("logs-eu", stream).ok());
  client::TokenInfo t;
  t.id = "web-reader";
  t.buckets = NameScope::parse("logs-*");
  t.streams = NameScope::parse("web-*");
  t.ops = kOpRead;
  auto c = client_for(issue(t));
  auto buckets = c->list_buckets();
  ASSERT_TRUE(buckets.ok()) << buckets.status().to_string();
  ASSERT_EQ(buckets->items.size(), 2u);
  EXPECT_EQ(buckets->items[0].name, "logs-eu");
  EXPECT_EQ(buckets->items[1].name, "logs-us");
  auto streams = c->list_streams("logs-eu", {.limit = 1});
  ASSERT_TRUE(streams.ok());
  ASSERT_EQ(streams->items.size(), 1u);
  EXPECT_EQ(streams->items[0].name, "web-1");
  EXPECT_TRUE(streams->more);
  streams = c->list_streams("logs-eu", {.start_after = "web-1"});
  ASSERT_TRUE(streams.ok());
  ASSERT_EQ(streams->items.size(), 1u);
  EXPECT_EQ(streams->items[0].name, "web-2");
  EXPECT_FALSE(streams->more);
  EXPECT_EQ(c->get_stream("logs-eu", "db-1").status().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(c->list_streams("metrics").status().code(), ErrorCode::kPermissionDenied);
  Json j = Json::parse(http(issue({.id = "web-reader-2", .buckets = t.buckets, .streams = t.streams, .ops = kOpRead}),
                            "GET", "/v1/buckets/logs-eu/streams")
                           .body);
  ASSERT_EQ(j["streams"].size(), 2u) << j.dump();
}

TEST_F(AuthTest, ATokenIssuesOnlyTokensWithinItself) {
  client::TokenInfo team;
  team.id = "team";
  team.buckets = NameScope::parse("team-*");
  team.tokens = NameScope::parse("team-*");
  team.ops = kOpRead | kOpAppend | kOpIssueToken | kOpListTokens | kOpRevokeToken;
  auto c = client_for(issue(team));
  client::TokenInfo child;
  child.id = "team-ci";
  child.buckets = NameScope::parse("team-ci");
  child.ops = kOpRead;
  auto issued = c->issue_token(child);
  ASSERT_TRUE(issued.ok()) << issued.status().to_string();
  EXPECT_EQ(issued->info.issued_by, "team");
  child.id = "team-wide";
  child.buckets = NameScope::parse("*");
  EXPECT_EQ(c->issue_token(child).status().code(), ErrorCode::kPermissionDenied);
  child.buckets = NameScope::parse("team-x");
  child.ops = kOpRead | kOpDeleteBucket;
  EXPECT_EQ(c->issue_token(child).status().code(), ErrorCode::kPermissionDenied);
  child.ops = kOpRead;
  child.id = "other";
  EXPECT_EQ(c->issue_token(child).status().code(), ErrorCode::kPermissionDenied);
  // It lists only its own kind, and cannot revoke root.
  auto listed = c->list_tokens();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0].id, "team-ci");
  EXPECT_EQ(c->revoke_token("root").status().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(c->revoke_token("team-ci").ok());
  // The secret is shown once and never listed.
  HttpReply r = http(root_secret_, "GET", "/v1/tokens");
  EXPECT_EQ(r.body.find(issued->token.substr(8)), std::string::npos);
}

TEST_F(AuthTest, AutoPrefixingKeepsATokenInsideItsStreams) {
  ASSERT_TRUE(root_->create_bucket("apps").ok());
  ASSERT_TRUE(root_->create_stream("apps", "other").ok());
  client::TokenInfo t;
  t.id = "tenant";
  t.streams = NameScope::parse("tenant-a/*");
  t.ops = kOpRead | kOpAppend | kOpCreateStream;
  t.auto_prefix_streams = true;
  const std::string secret = issue(t);
  auto c = client_for(secret);
  auto created = c->create_stream("apps", "orders");
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  EXPECT_EQ(created->name, "orders");  // As the token sees it.
  ASSERT_TRUE(c->append("apps", "orders", {{.body = "one"}}).ok());
  EXPECT_TRUE(root_->get_stream("apps", "tenant-a/orders").ok());  // As stored.
  auto mine = c->list_streams("apps");
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->items.size(), 1u);
  EXPECT_EQ(mine->items[0].name, "orders");
  auto sub = c->subscribe("apps", "orders");
  auto first = sub->next(5s);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(first->body, "one");
  // The admin port shows the same stream, with the details of the stored one.
  Json got = Json::parse(http(secret, "GET", "/v1/buckets/apps/streams/orders").body);
  EXPECT_EQ(got["name"], "orders") << got.dump();
  EXPECT_EQ(got["tail"], 1) << got.dump();
  // /v1/shards lists only its streams' rows, under the names it knows.
  Json shards = Json::parse(http(secret, "GET", "/v1/shards").body);
  size_t rows = 0;
  for (const auto& shard : shards["shards"]) {
    for (const auto& row : shard["stream_tails"]) {
      EXPECT_EQ(row["name"], "orders") << shards.dump();
      rows++;
    }
  }
  EXPECT_EQ(rows, 1u) << shards.dump();
  // "other" is "tenant-a/other" to it: not the root's stream.
  EXPECT_EQ(c->read("apps", "other").status().code(), ErrorCode::kNotFound);
}

TEST_F(AuthTest, RevocationEndsAnOpenSubscriptionWithinASecondAndSurvivesRestart) {
  ASSERT_TRUE(root_->create_bucket("live").ok());
  ASSERT_TRUE(root_->create_stream("live", "s").ok());
  ASSERT_TRUE(root_->append("live", "s", {{.body = "r0"}}).ok());
  client::TokenInfo t;
  t.id = "follower";
  t.ops = kOpRead;
  const std::string secret = issue(t);
  auto c = client_for(secret);
  auto sub = c->subscribe("live", "s");
  ASSERT_TRUE(sub->next(5s).ok());
  ASSERT_TRUE(root_->revoke_token("follower").ok());
  const auto revoked_at = std::chrono::steady_clock::now();
  auto ended = sub->next(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - revoked_at, 1500ms);
  EXPECT_EQ(ended.status().code(), ErrorCode::kUnauthenticated) << ended.status().to_string();
  EXPECT_EQ(c->read("live", "s").status().code(), ErrorCode::kUnauthenticated);

  ASSERT_TRUE(server_->stop(SIGKILL).has_value());
  start();
  EXPECT_EQ(client_for(secret)->read("live", "s").status().code(), ErrorCode::kUnauthenticated);
  auto listed = root_->list_tokens();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->items.size(), 1u);  // Only root.
}

TEST_F(AuthTest, RateAndConnectionLimitsThrottleWithoutDroppingTheConnection) {
  ASSERT_TRUE(root_->create_bucket("limited").ok());
  ASSERT_TRUE(root_->create_stream("limited", "s").ok());
  client::TokenInfo t;
  t.id = "slow";
  t.ops = kOpRead | kOpAppend;
  t.limits.append_records_per_s = 10;
  t.limits.read_records_per_s = 5;
  const std::string secret = issue(t);
  auto c = client_for(secret);
  std::vector<client::AppendRecord> twelve(12, client::AppendRecord{.body = "r"});
  ASSERT_TRUE(c->append("limited", "s", twelve).ok());  // A second's worth and more: admitted, now in debt.
  auto refused = c->append("limited", "s", {{.body = "x"}});
  ASSERT_EQ(refused.status().code(), ErrorCode::kThrottled) << refused.status().to_string();
  EXPECT_GT(refused.status().detail(), 0u);
  EXPECT_LE(refused.status().detail(), 200u);
  std::this_thread::sleep_for(std::chrono::milliseconds(refused.status().detail() + 20));
  auto after = c->append("limited", "s", {{.body = "after"}});  // Same connection, still open.
  EXPECT_TRUE(after.ok()) << after.status().to_string();
  // Reads: charged what they return, then refused until the debt is paid.
  ASSERT_TRUE(c->read("limited", "s").ok());
  auto read_refused = c->read("limited", "s");
  EXPECT_EQ(read_refused.status().code(), ErrorCode::kThrottled);
  // The admin port answers 429 with Retry-After.
  HttpReply r = http(secret, "GET", "/v1/buckets/limited/streams/s/records");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_FALSE(r.headers["retry-after"].empty());
  EXPECT_NE(r.body.find("retry_after_ms"), std::string::npos);
  HttpReply m = http(root_secret_, "GET", "/metrics");
  EXPECT_NE(m.body.find("runnel_auth_throttled_total"), std::string::npos);
}

TEST_F(AuthTest, HealthAndReadyStayOpenMetricsNeedsAToken) {
  EXPECT_EQ(http("", "GET", "/health").status, 200);
  EXPECT_EQ(http("", "GET", "/ready").status, 200);
  EXPECT_EQ(http("", "GET", "/metrics").status, 401);
  EXPECT_EQ(http("", "GET", "/v1/config").status, 401);
  EXPECT_EQ(http("root.wrong", "GET", "/metrics").status, 401);
  HttpReply m = http(root_secret_, "GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("reason=\"missing\""), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("reason=\"wrong_secret\""), std::string::npos);
}

TEST(AuthLimits, ATokensConnectionsBeyondItsMostAreRefusedAtTheHello) {
  TempDir dir;
  std::string error;
  auto server = RunneldProcess::start(
      {"--auth", "--data-dir", dir.path(), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--shards", "1"},
      {}, &error);
  ASSERT_NE(server, nullptr) << error;
  std::string root = read_file(dir.path() + "/root-token");
  root.pop_back();
  auto connect = [&](const std::string& secret) {
    return std::make_unique<BlockingClient>(client::ClientOptions{.host = "127.0.0.1",
                                                                  .port = static_cast<uint16_t>(server->binary().port),
                                                                  .token = secret,
                                                                  .connection_per_shard = false,
                                                                  .request_timeout_ms = 10000});
  };
  client::TokenInfo t;
  t.id = "one-at-a-time";
  t.ops = kOpRead;
  t.limits.connections_max = 1;
  auto issued = connect(root)->issue_token(t);
  ASSERT_TRUE(issued.ok()) << issued.status().to_string();
  auto first = connect(issued->token);
  EXPECT_TRUE(first->list_buckets().ok());
  auto refused = connect(issued->token)->list_buckets();
  EXPECT_EQ(refused.status().code(), ErrorCode::kThrottled) << refused.status().to_string();
  first.reset();  // Closing it frees the place.
  bool admitted = false;
  for (int i = 0; i < 100 && !admitted; i++) {
    admitted = connect(issued->token)->list_buckets().ok();
    if (!admitted) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(admitted);
  EXPECT_TRUE(server->stop(SIGTERM).has_value());
}

TEST(AuthExposure, ANonLoopbackListenerNeedsAuthOrTheOverride) {
  TempDir dir;
  RunResult refused =
      run_runneld({"--data-dir", dir.path(), "--listen", "0.0.0.0:0", "--admin-listen", "127.0.0.1:0"}, {});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--allow-unauthenticated"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--auth"), std::string::npos) << refused.err;
  std::string error;
  auto server = RunneldProcess::start(
      {"--auth", "--data-dir", dir.path(), "--listen", "0.0.0.0:0", "--admin-listen", "127.0.0.1:0", "--shards", "1"},
      {}, &error);
  ASSERT_NE(server, nullptr) << error;
  EXPECT_TRUE(server->stop(SIGTERM).has_value());
}

}  // namespace
}  // namespace runnel::testing
