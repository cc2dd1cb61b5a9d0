#include "net/auth/access.h"

#include <gtest/gtest.h>

#include <set>

#include "proto/wire.h"

namespace runnel::auth {
namespace {

// A catalog holding one token with `info`; returns its secret.
std::string issue(StreamCatalog* catalog, const TokenInfo& info) {
  NewSecret secret = make_secret(info.id);
  CatalogMutation m;
  m.op = CatalogOp::kTokenIssue;
  m.token = TokenEntry{info, secret.hash};
  EXPECT_TRUE(catalog->apply(m).is_ok());
  return secret.token;
}

void revoke(StreamCatalog* catalog, const std::string& id) {
  CatalogMutation m;
  m.op = CatalogOp::kTokenRevoke;
  m.token.info.id = id;
  EXPECT_TRUE(catalog->apply(m).is_ok());
}

TokenInfo token(std::string id, uint32_t ops) {
  TokenInfo t;
  t.id = std::move(id);
  t.ops = ops;
  return t;
}

TEST(TokenSecret, HasTheIdAnd256RandomBitsAndOnlyItsHashIsKept) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; i++) {
    NewSecret s = make_secret("app");
    ASSERT_EQ(s.token.substr(0, 4), "app.");
    EXPECT_EQ(s.token.size(), 4u + 43u);  // 32 bytes in base64url, unpadded.
    EXPECT_EQ(s.hash, hash_secret(s.token));
    EXPECT_EQ(s.hash.size(), kTokenHashBytes);
    EXPECT_EQ(s.token.find('='), std::string::npos);
    EXPECT_TRUE(seen.insert(s.token).second);
  }
}

TEST(Principal, SignsInOnlyWithTheRightSecretAndSaysWhyNot) {
  StreamCatalog catalog;
  const std::string secret = issue(&catalog, token("app", kOpRead));
  Principal p;
  Refusal why{};
  EXPECT_TRUE(p.sign_in(catalog, secret, 1000, &why).is_ok());
  EXPECT_EQ(p.id(), "app");
  auto refused = [&](std::string_view bearer) {
    Principal q;
    Status s = q.sign_in(catalog, bearer, 1000, &why);
    EXPECT_EQ(s.code(), ErrorCode::kUnauthenticated) << bearer;
    return why;
  };
  EXPECT_EQ(refused(""), Refusal::kMissing);
  EXPECT_EQ(refused("no-dot"), Refusal::kMalformed);
  EXPECT_EQ(refused("BAD ID.xyz"), Refusal::kMalformed);
  EXPECT_EQ(refused("other.abc"), Refusal::kUnknown);
  std::string wrong = secret;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(refused(wrong), Refusal::kWrongSecret);
  // Unknown and wrong secret read the same to the client.
  EXPECT_EQ(unauthenticated(Refusal::kUnknown).message(), unauthenticated(Refusal::kWrongSecret).message());
}

TEST(Principal, ExpiryAndRevocationEndTheTokenAtItsNextCheck) {
  StreamCatalog catalog;
  TokenInfo t = token("app", kOpRead);
  t.expires_ms = 5000;
  const std::string secret = issue(&catalog, t);
  Principal p;
  Refusal why{};
  ASSERT_TRUE(p.sign_in(catalog, secret, 4999, &why).is_ok());
  ASSERT_NE(p.current(catalog, 4999, &why), nullptr);
  EXPECT_EQ(p.current(catalog, 5000, &why), nullptr);
  EXPECT_EQ(why, Refusal::kExpired);
  Principal late;
  EXPECT_FALSE(late.sign_in(catalog, secret, 6000, &why).is_ok());
  EXPECT_EQ(why, Refusal::kExpired);

  revoke(&catalog, "app");
  EXPECT_EQ(p.current(catalog, 1000, &why), nullptr);
  EXPECT_EQ(why, Refusal::kRevoked);
  // Re-issued under the same id: a new secret, not the old connection's.
  issue(&catalog, token("app", kOpRead));
  EXPECT_EQ(p.current(catalog, 1000, &why), nullptr);
  EXPECT_EQ(why, Refusal::kRevoked);
}

TEST(Authorize, ScopesAndOperationsAreBothNeeded) {
  TokenInfo t = token("reader", kOpRead);
  t.buckets = NameScope::parse("logs-*");
  t.streams = NameScope::parse("web");
  EXPECT_TRUE(authorize_stream(t, kOpRead, "logs-eu", "web").is_ok());
  EXPECT_TRUE(authorize_stream(t, 0, "logs-eu", "web").is_ok());  // Describing: any op.
  Status s = authorize_stream(t, kOpAppend, "logs-eu", "web");
  EXPECT_EQ(s.code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "token 'reader' may not append stream 'web' in bucket 'logs-eu'");
  EXPECT_FALSE(authorize_stream(t, kOpRead, "metrics", "web").is_ok());
  EXPECT_FALSE(authorize_stream(t, kOpRead, "logs-eu", "web2").is_ok());
  EXPECT_FALSE(authorize_bucket(t, kOpCreateBucket, "logs-new").is_ok());
  EXPECT_TRUE(authorize_bucket(t, 0, "logs-new").is_ok());
  EXPECT_FALSE(authorize_token(t, kOpListTokens, "x").is_ok());
  EXPECT_TRUE(may_see_stream(t, "logs-a", "web"));
  EXPECT_FALSE(may_see_bucket(t, "other"));
  EXPECT_FALSE(may_see_bucket(token("none", 0), "logs"));
}

TEST(Authorize, EveryOpcodeNamesItsOperation) {
  using wire::Opcode;
  EXPECT_EQ(op_for_opcode(static_cast<uint16_t>(Opcode::kAppend)), kOpAppend);
  EXPECT_EQ(op_for_opcode(static_cast<uint16_t>(Opcode::kSubscribe)), kOpRead);
  EXPECT_EQ(op_for_opcode(static_cast<uint16_t>(Opcode::kTrimStream)), kOpTrimStream);
  EXPECT_EQ(op_for_opcode(static_cast<uint16_t>(Opcode::kGetStream)), 0u);
  EXPECT_EQ(op_for_opcode(static_cast<uint16_t>(Opcode::kListBuckets)), 0u);
}

TEST(Scope, WithinMeansEveryNameItReachesTheOuterReachesToo) {
  auto sc = NameScope::parse;
  EXPECT_TRUE(sc("logs-eu-*").within(sc("logs-*")));
  EXPECT_TRUE(sc("logs-eu").within(sc("logs-*")));
  EXPECT_TRUE(sc("anything").within(sc("*")));
  EXPECT_TRUE(sc("a").within(sc("a")));
  EXPECT_FALSE(sc("logs-*").within(sc("logs-eu-*")));
  EXPECT_FALSE(sc("*").within(sc("logs-*")));
  EXPECT_FALSE(sc("a*").within(sc("a")));
  EXPECT_EQ(sc("x*").text(), "x*");
  EXPECT_EQ(sc("*").text(), "*");
  EXPECT_EQ(NameScope{}.text(), "*");
}

TEST(CheckIssue, ATokenIssuesOnlyNarrowerShorterLivedTokens) {
  TokenInfo issuer = token("team", kOpRead | kOpAppend | kOpIssueToken);
  issuer.buckets = NameScope::parse("team-*");
  issuer.tokens = NameScope::parse("team-*");
  issuer.expires_ms = 10'000;
  TokenInfo child = token("team-ci", kOpRead);
  child.buckets = NameScope::parse("team-ci");
  child.tokens = NameScope::parse("team-ci-*");
  child.expires_ms = 9'000;
  EXPECT_TRUE(check_issue(issuer, child).is_ok());

  auto refused = [&](TokenInfo c, std::string_view why) {
    Status s = check_issue(issuer, c);
    EXPECT_EQ(s.code(), ErrorCode::kPermissionDenied) << why;
    EXPECT_NE(s.message().find(why), std::string::npos) << s.message();
  };
  TokenInfo c = child;
  c.id = "other";
  refused(c, "token scope");
  c = child;
  c.buckets = NameScope::parse("*");
  refused(c, "bucket scope");
  c = child;
  c.ops |= kOpDeleteBucket;
  refused(c, "delete-bucket");
  c = child;
  c.expires_ms = 0;
  refused(c, "outlive");
  c = child;
  c.expires_ms = 10'001;
  refused(c, "outlive");
  c = child;
  c.tokens = NameScope::parse("*");
  EXPECT_TRUE(check_issue(issuer, c).is_ok());  // No token operations: its token scope is moot.
  c.ops |= kOpIssueToken;
  refused(c, "token scope '*'");
  issuer.limits.append_bytes_per_s = 1000;
  c = child;
  refused(c, "limits");
  c.limits.append_bytes_per_s = 1000;
  EXPECT_TRUE(check_issue(issuer, c).is_ok());
  issuer.ops &= ~kOpIssueToken;
  refused(child, "issue-token");
}

TEST(ValidateNewToken, RefusesShapesThatCannotWork) {
  EXPECT_TRUE(validate_new_token(token("ok", kOpRead), 0).is_ok());
  EXPECT_FALSE(validate_new_token(token("", kOpRead), 0).is_ok());
  EXPECT_FALSE(validate_new_token(token("Caps", kOpRead), 0).is_ok());
  EXPECT_FALSE(validate_new_token(token("a.b", kOpRead), 0).is_ok());  // The secret's separator.
  EXPECT_FALSE(validate_new_token(token("none", 0), 0).is_ok());
  TokenInfo past = token("past", kOpRead);
  past.expires_ms = 5;
  EXPECT_FALSE(validate_new_token(past, 10).is_ok());
  TokenInfo prefixing = token("p", kOpRead);
  prefixing.auto_prefix_streams = true;
  EXPECT_FALSE(validate_new_token(prefixing, 0).is_ok());  // Needs a stream prefix.
  prefixing.streams = NameScope::parse("app-*");
  EXPECT_TRUE(validate_new_token(prefixing, 0).is_ok());
}

TEST(Bearer, ComesFromTheAuthorizationHeader) {
  EXPECT_EQ(bearer_of("Bearer abc.def"), "abc.def");
  EXPECT_EQ(bearer_of("bearer  abc.def "), "abc.def");
  EXPECT_EQ(bearer_of("Basic abc"), "");
  EXPECT_EQ(bearer_of(""), "");
  EXPECT_EQ(bearer_of("Bearer "), "");
}

TEST(TokenCatalog, IssueAndRevokeRoundTripThroughTheirRecords) {
  TokenInfo t = token("app", kOpRead | kOpAppend);
  t.buckets = NameScope::parse("logs-*");
  t.streams = NameScope::parse("app-*");
  t.tokens = NameScope::parse("none");
  t.expires_ms = 123;
  t.auto_prefix_streams = true;
  t.limits = TokenLimits{1, 2, 3, 4, 5};
  t.created_ms = 99;
  t.issued_by = "root";
  CatalogMutation m;
  m.op = CatalogOp::kTokenIssue;
  m.token = TokenEntry{t, make_secret("app").hash};
  auto back = decode_mutation(encode_mutation(m));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(*back, m);
  CatalogMutation r;
  r.op = CatalogOp::kTokenRevoke;
  r.token.info.id = "app";
  auto revoked = decode_mutation(encode_mutation(r));
  ASSERT_TRUE(revoked.is_ok());
  EXPECT_EQ(revoked->token.info.id, "app");
  // Strict: a bad hash length or unknown op bits are corrupt.
  m.token.secret_hash = "short";
  EXPECT_EQ(decode_mutation(encode_mutation(m)).status().code(), ErrorCode::kCorrupt);
  m.token.secret_hash = make_secret("app").hash;
  m.token.info.ops = 1u << 30;
  EXPECT_EQ(decode_mutation(encode_mutation(m)).status().code(), ErrorCode::kCorrupt);

  StreamCatalog catalog;
  issue(&catalog, t);
  EXPECT_EQ(catalog.apply(m).code(), ErrorCode::kAlreadyExists);
  const uint64_t version = catalog.token_version();
  revoke(&catalog, "app");
  EXPECT_NE(catalog.token_version(), version);
  EXPECT_EQ(catalog.find_token("app"), nullptr);
  CatalogMutation again;
  again.op = CatalogOp::kTokenRevoke;
  again.token.info.id = "app";
  EXPECT_EQ(catalog.apply(again).code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace runnel::auth
