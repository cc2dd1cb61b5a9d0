#include "net/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace runnel {
namespace {

using Result = HttpRequestParser::Result;

HttpLimits small_limits() {
  HttpLimits limits;
  limits.header_bytes_max = 256;
  limits.body_bytes_max = 64;
  limits.header_count_max = 4;
  return limits;
}

struct Fed {
  Result result;
  size_t consumed;
};

Fed feed(HttpRequestParser& parser, std::string_view bytes) {
  size_t consumed = 0;
  Result result = parser.feed(bytes.data(), bytes.size(), &consumed);
  return {result, consumed};
}

// Feeds one byte per call until the parser reports something other than
// kNeedMore (or the input runs out); returns that result and the bytes used.
Fed feed_bytewise(HttpRequestParser& parser, std::string_view bytes) {
  size_t used = 0;
  while (used < bytes.size()) {
    Fed fed = feed(parser, bytes.substr(used, 1));
    used += fed.consumed;
    if (fed.result != Result::kNeedMore) return {fed.result, used};
  }
  return {Result::kNeedMore, used};
}

// --- well-formed requests ---

TEST(HttpRequestParser, ParsesASimpleGet) {
  HttpRequestParser parser(small_limits());
  const std::string bytes = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  Fed fed = feed(parser, bytes);
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, bytes.size());
  const HttpRequest& r = parser.request();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/health");
  EXPECT_EQ(r.path, "/health");
  EXPECT_EQ(r.query, "");
  EXPECT_EQ(r.body, "");
  EXPECT_TRUE(r.keep_alive);
}

TEST(HttpRequestParser, SplitsTheTargetIntoPathAndQuery) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET /v1/streams?limit=10&after=a%20b HTTP/1.1\r\n\r\n").result, Result::kRequestReady);
  EXPECT_EQ(parser.request().target, "/v1/streams?limit=10&after=a%20b");
  EXPECT_EQ(parser.request().path, "/v1/streams");
  EXPECT_EQ(parser.request().query, "limit=10&after=a%20b");
}

TEST(HttpRequestParser, LeavesTheQueryEmptyAfterABareQuestionMark) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET /metrics? HTTP/1.1\r\n\r\n").result, Result::kRequestReady);
  EXPECT_EQ(parser.request().path, "/metrics");
  EXPECT_EQ(parser.request().query, "");
}

TEST(HttpRequestParser, DoesNotPercentDecodeThePath) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET /a%2Fb HTTP/1.1\r\n\r\n").result, Result::kRequestReady);
  EXPECT_EQ(parser.request().path, "/a%2Fb");
}

TEST(HttpRequestParser, KeepsHeadersInOrderWithNamesAsSent) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.1\r\nHost: h\r\nX-Second: 2\r\nx-third: three\r\n\r\n").result,
            Result::kRequestReady);
  using Headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(parser.request().headers, (Headers{{"Host", "h"}, {"X-Second", "2"}, {"x-third", "three"}}));
}

TEST(HttpRequestParser, KeepsAHeaderWithAnEmptyValueSeparate) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.1\r\nX-Empty:\r\nX-Next: 2\r\n\r\n").result, Result::kRequestReady);
  using Headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(parser.request().headers, (Headers{{"X-Empty", ""}, {"X-Next", "2"}}));
}

TEST(HttpRequestParser, KeepsAHeaderWithAnEmptyValueSeparateWhenFedByteByByte) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed_bytewise(parser, "GET / HTTP/1.1\r\nX-Empty:   \r\nX-Next: 2\r\n\r\n").result,
            Result::kRequestReady);
  using Headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(parser.request().headers, (Headers{{"X-Empty", ""}, {"X-Next", "2"}}));
}

TEST(HttpRequestParser, LooksUpHeadersCaseInsensitively) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.1\r\nX-Token: abc\r\n\r\n").result, Result::kRequestReady);
  EXPECT_EQ(parser.request().header("x-token"), "abc");
  EXPECT_EQ(parser.request().header("X-TOKEN"), "abc");
}

TEST(HttpRequestParser, HeaderLookupReturnsTheFirstMatch) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.1\r\nX-A: first\r\nx-a: second\r\n\r\n").result, Result::kRequestReady);
  EXPECT_EQ(parser.request().header("X-A"), "first");
}

TEST(HttpRequestParser, HeaderLookupOfAnAbsentNameIsEmpty) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.1\r\nX-Token: abc\r\n\r\n").result, Result::kRequestReady);
  EXPECT_EQ(parser.request().header("X-Tok"), "");
  EXPECT_EQ(parser.request().header("X-Token-2"), "");
}

TEST(HttpRequestParser, ReadsABodyByContentLength) {
  HttpRequestParser parser(small_limits());
  const std::string bytes = "POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
  Fed fed = feed(parser, bytes);
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, bytes.size());
  EXPECT_EQ(parser.request().method, "POST");
  EXPECT_EQ(parser.request().body, "hello world");
}

TEST(HttpRequestParser, WaitsForTheRestOfAContentLengthBody) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello");
  EXPECT_EQ(fed.result, Result::kNeedMore);
  ASSERT_EQ(feed(parser, " world").result, Result::kRequestReady);
  EXPECT_EQ(parser.request().body, "hello world");
}

TEST(HttpRequestParser, DechunksAChunkedBody) {
  HttpRequestParser parser(small_limits());
  const std::string bytes =
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n1\r\n \r\nA\r\nworld, too\r\n0\r\n\r\n";
  Fed fed = feed(parser, bytes);
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, bytes.size());
  EXPECT_EQ(parser.request().body, "hello world, too");
}

TEST(HttpRequestParser, ByteAtATimeFeedingGivesTheSameRequest) {
  const std::string bytes =
      "POST /v1/x?y=1 HTTP/1.1\r\nHost: h\r\nX-Long-Header-Name: some value\r\n"
      "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
  HttpRequestParser whole(small_limits());
  ASSERT_EQ(feed(whole, bytes).result, Result::kRequestReady);

  HttpRequestParser bytewise(small_limits());
  Fed fed = feed_bytewise(bytewise, bytes);
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, bytes.size());
  const HttpRequest& a = whole.request();
  const HttpRequest& b = bytewise.request();
  EXPECT_EQ(b.method, a.method);
  EXPECT_EQ(b.target, a.target);
  EXPECT_EQ(b.path, a.path);
  EXPECT_EQ(b.query, a.query);
  EXPECT_EQ(b.headers, a.headers);
  EXPECT_EQ(b.body, a.body);
  EXPECT_EQ(b.body, "abcdefg");
  EXPECT_EQ(b.keep_alive, a.keep_alive);
}

TEST(HttpRequestParser, PipelinedRequestsComeOutOneAtATime) {
  HttpRequestParser parser(small_limits());
  const std::string first = "GET /one HTTP/1.1\r\n\r\n";
  const std::string second = "POST /two HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const std::string third = "GET /three HTTP/1.1\r\n\r\n";
  const std::string bytes = first + second + third;

  Fed fed = feed(parser, bytes);
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, first.size());
  EXPECT_EQ(parser.request().path, "/one");
  parser.next();

  size_t offset = fed.consumed;
  fed = feed(parser, std::string_view(bytes).substr(offset));
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, second.size());
  EXPECT_EQ(parser.request().path, "/two");
  EXPECT_EQ(parser.request().body, "abc");
  parser.next();

  offset += fed.consumed;
  fed = feed(parser, std::string_view(bytes).substr(offset));
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, third.size());
  EXPECT_EQ(parser.request().path, "/three");
  EXPECT_TRUE(parser.request().headers.empty());
}

TEST(HttpRequestParser, KeepsReportingTheReadyRequestUntilNext) {
  HttpRequestParser parser(small_limits());
  const std::string bytes = "GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\n";
  Fed fed = feed(parser, bytes);
  ASSERT_EQ(fed.result, Result::kRequestReady);
  Fed again = feed(parser, std::string_view(bytes).substr(fed.consumed));
  EXPECT_EQ(again.result, Result::kRequestReady);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_EQ(parser.request().path, "/one");
}

TEST(HttpRequestParser, IsInProgressFromTheFirstByteUntilNext) {
  HttpRequestParser parser(small_limits());
  EXPECT_FALSE(parser.in_progress());
  ASSERT_EQ(feed(parser, "G").result, Result::kNeedMore);
  EXPECT_TRUE(parser.in_progress());
  ASSERT_EQ(feed(parser, "ET / HTTP/1.1\r\n\r\n").result, Result::kRequestReady);
  parser.next();
  EXPECT_FALSE(parser.in_progress());
}

TEST(HttpRequestParser, KeepsAliveByDefaultInHttp11) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.1\r\n\r\n").result, Result::kRequestReady);
  EXPECT_TRUE(parser.request().keep_alive);
}

TEST(HttpRequestParser, DoesNotKeepAliveWithConnectionClose) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n").result, Result::kRequestReady);
  EXPECT_FALSE(parser.request().keep_alive);
}

TEST(HttpRequestParser, DoesNotKeepAliveInHttp10) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.0\r\n\r\n").result, Result::kRequestReady);
  EXPECT_FALSE(parser.request().keep_alive);
}

TEST(HttpRequestParser, KeepsAliveInHttp10WhenAskedTo) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").result, Result::kRequestReady);
  EXPECT_TRUE(parser.request().keep_alive);
}

TEST(HttpRequestParser, ExpectContinueStopsAfterTheHeadersThenYieldsTheRequest) {
  HttpRequestParser parser(small_limits());
  const std::string head = "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";
  const std::string bytes = head + "data";
  Fed fed = feed(parser, bytes);
  ASSERT_EQ(fed.result, Result::kExpectsContinue);
  EXPECT_EQ(fed.consumed, head.size());
  fed = feed(parser, std::string_view(bytes).substr(head.size()));
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, 4u);
  EXPECT_EQ(parser.request().body, "data");
}

TEST(HttpRequestParser, ExpectContinueIsMatchedCaseInsensitively) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nContent-Length: 1\r\nexpect: 100-Continue\r\n\r\n");
  EXPECT_EQ(fed.result, Result::kExpectsContinue);
}

TEST(HttpRequestParser, ExpectContinueWithAnOversizedBodyIsRefusedInsteadOfContinued) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nContent-Length: 65\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 413);
}

TEST(HttpRequestParser, RejectsAnUnknownExpectation) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nContent-Length: 1\r\nExpect: something-else\r\n\r\nx");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 417);
}

TEST(HttpRequestParser, AcceptsABodyOfExactlyTheLimit) {
  HttpRequestParser parser(small_limits());
  const std::string body(64, 'b');
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nContent-Length: 64\r\n\r\n" + body);
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(parser.request().body, body);
}

TEST(HttpRequestParser, AcceptsExactlyTheMaximumNumberOfHeaders) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(parser.request().headers.size(), 4u);
}

TEST(HttpRequestParser, CompletesAtFinishWhenNothingIsPending) {
  HttpRequestParser parser(small_limits());
  EXPECT_EQ(parser.finish(), Result::kNeedMore);
}

// --- limits ---

TEST(HttpRequestParser, RejectsAnOversizedRequestLineWith431) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "GET /" + std::string(300, 'a') + " HTTP/1.1\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 431);
}

TEST(HttpRequestParser, RejectsAnOversizedHeaderValueWith431) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "GET / HTTP/1.1\r\nX-Big: " + std::string(300, 'v') + "\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 431);
}

TEST(HttpRequestParser, RejectsHeadersThatTogetherExceedTheLimitWith431) {
  HttpRequestParser parser(small_limits());
  const std::string value(70, 'v');  // Each header fits; four of them do not.
  Fed fed = feed(parser, "GET / HTTP/1.1\r\nA: " + value + "\r\nB: " + value + "\r\nC: " + value + "\r\nD: " + value +
                             "\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 431);
}

TEST(HttpRequestParser, RejectsAnOversizedHeaderFedByteByByteWith431) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed_bytewise(parser, "GET / HTTP/1.1\r\nX-Big: " + std::string(300, 'v') + "\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 431);
}

TEST(HttpRequestParser, RejectsTooManyHeadersWith431) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 431);
}

TEST(HttpRequestParser, RejectsAnOversizedContentLengthWith413BeforeTheBodyArrives) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nContent-Length: 65\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 413);
}

TEST(HttpRequestParser, RejectsAHugeContentLengthWith413) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_NE(parser.error_status(), 0);
  EXPECT_EQ(parser.request().body, "");
}

TEST(HttpRequestParser, RejectsAnOversizedChunkedBodyWith413) {
  HttpRequestParser parser(small_limits());
  const std::string chunk(40, 'c');
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n" + chunk + "\r\n28\r\n" +
                             chunk + "\r\n0\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 413);
}

TEST(HttpRequestParser, RejectsAnOversizedChunkedBodyFedByteByByteWith413) {
  HttpRequestParser parser(small_limits());
  const std::string chunk(40, 'c');
  Fed fed = feed_bytewise(parser, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n" + chunk +
                                      "\r\n28\r\n" + chunk + "\r\n0\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 413);
}

// --- malformed input ---

TEST(HttpRequestParser, RejectsAMalformedRequestLineWith400) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "GET / HTTP1.1\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
  EXPECT_FALSE(parser.error_message().empty());
}

TEST(HttpRequestParser, RejectsAnUnknownMethodWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "FETCH / HTTP/1.1\r\n\r\n").result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsAnUnknownHttpVersionWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/7.3\r\n\r\n").result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsGarbageBytesWith400) {
  HttpRequestParser parser(small_limits());
  // The start of a TLS ClientHello, as sent by a client that speaks HTTPS.
  const std::string garbage("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  ASSERT_EQ(feed(parser, garbage).result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsAControlCharacterInAHeaderValueWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, std::string("GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n")).result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsAnAbsoluteFormTargetWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET http://example.com/health HTTP/1.1\r\n\r\n").result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsAnAsteriskTargetWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "OPTIONS * HTTP/1.1\r\n\r\n").result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsAnInvalidContentLengthWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\nx").result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsConflictingContentLengthsWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy").result,
            Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsContentLengthTogetherWithChunkedWith400) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser,
                 "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  ASSERT_EQ(fed.result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, RejectsAMalformedChunkSizeWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").result,
            Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, AnswersAnUpgradeRequestAsPlainHttp) {
  HttpRequestParser parser(small_limits());
  const std::string upgrade = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  Fed fed = feed(parser, upgrade);
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(fed.consumed, upgrade.size());
  EXPECT_EQ(parser.request().path, "/ws");
  EXPECT_TRUE(parser.request().keep_alive);
}

TEST(HttpRequestParser, KeepsParsingHttpAfterAnIgnoredUpgrade) {
  HttpRequestParser parser(small_limits());
  const std::string upgrade = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  const std::string bytes = upgrade + "GET /next HTTP/1.1\r\n\r\n";
  ASSERT_EQ(feed(parser, bytes).result, Result::kRequestReady);
  parser.next();
  Fed fed = feed(parser, std::string_view(bytes).substr(upgrade.size()));
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(parser.request().path, "/next");
}

TEST(HttpRequestParser, ReadsTheBodyOfAnIgnoredUpgradeAsHttp) {
  HttpRequestParser parser(small_limits());
  Fed fed = feed(parser, "POST /echo HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_EQ(fed.result, Result::kRequestReady);
  EXPECT_EQ(parser.request().body, "abc");
}

TEST(HttpRequestParser, RejectsConnectWith400) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "CONNECT example.com:443 HTTP/1.1\r\n\r\n").result, Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, StaysFailedAfterAnError) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "NONSENSE\r\n\r\n").result, Result::kError);
  Fed fed = feed(parser, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(fed.result, Result::kError);
  EXPECT_EQ(fed.consumed, 0u);
  EXPECT_EQ(parser.finish(), Result::kError);
}

TEST(HttpRequestParser, FinishReportsATruncatedBody) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").result, Result::kNeedMore);
  EXPECT_EQ(parser.finish(), Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(HttpRequestParser, FinishReportsTruncatedHeaders) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET / HTTP/1.1\r\nHost: x").result, Result::kNeedMore);
  EXPECT_EQ(parser.finish(), Result::kError);
}

TEST(HttpRequestParser, FinishReportsATruncatedChunkedBody) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").result,
            Result::kNeedMore);
  EXPECT_EQ(parser.finish(), Result::kError);
}

TEST(HttpRequestParser, NextForgetsTheAnsweredRequest) {
  HttpRequestParser parser(small_limits());
  ASSERT_EQ(feed(parser, "GET /one HTTP/1.1\r\nX-A: 1\r\n\r\n").result, Result::kRequestReady);
  parser.next();
  EXPECT_TRUE(parser.request().headers.empty());
  EXPECT_EQ(parser.request().target, "");
  ASSERT_EQ(feed(parser, "GET /two HTTP/1.1\r\n\r\n").result, Result::kRequestReady);
  EXPECT_EQ(parser.request().target, "/two");
  EXPECT_TRUE(parser.request().headers.empty());
}

}  // namespace
}  // namespace runnel
