#include "net/auth/access.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

#include "core/assert.h"
#include "proto/wire.h"

namespace runnel::auth {

namespace {

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(const unsigned char* bytes, size_t n) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    acc = (acc << 8) | bytes[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kBase64Url[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kBase64Url[(acc << (6 - bits)) & 63];
  return out;
}

Status denied(const TokenInfo& token, uint32_t op, std::string_view what) {
  return Status(ErrorCode::kPermissionDenied,
                fmt::format("token '{}' may not {} {}", token.id, token_op_name(op), what));
}

}  // namespace

NewSecret make_secret(std::string_view id) {
  unsigned char random[kSecretRandomBytes];
  RUNNEL_ASSERT(RAND_bytes(random, sizeof(random)) == 1);
  NewSecret s;
  s.token = fmt::format("{}.{}", id, base64url(random, sizeof(random)));
  OPENSSL_cleanse(random, sizeof(random));
  s.hash = hash_secret(s.token);
  return s;
}

std::string hash_secret(std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  RUNNEL_ASSERT(EVP_Digest(token.data(), token.size(), digest, &len, EVP_sha256(), nullptr) == 1);
  RUNNEL_ASSERT(len == kTokenHashBytes);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

const char* refusal_name(Refusal r) {
  switch (r) {
    case Refusal::kMissing:
      return "missing";
    case Refusal::kMalformed:
      return "malformed";
    case Refusal::kUnknown:
      return "unknown";
    case Refusal::kWrongSecret:
      return "wrong_secret";
    case Refusal::kExpired:
      return "expired";
    case Refusal::kRevoked:
      return "revoked";
  }
  return "?";
}

Status unauthenticated(Refusal refusal) {
  switch (refusal) {
    case Refusal::kMissing:
      return Status(ErrorCode::kUnauthenticated,
                    "this server needs an access token (runnel: --token or RUNNEL_TOKEN; HTTP: Authorization: Bearer)");
    case Refusal::kExpired:
      return Status(ErrorCode::kUnauthenticated, "the access token has expired");
    case Refusal::kRevoked:
      return Status(ErrorCode::kUnauthenticated, "the access token was revoked");
    case Refusal::kMalformed:
    case Refusal::kUnknown:
    case Refusal::kWrongSecret:
      break;
  }
  // Unknown id and wrong secret read alike: no oracle for which ids exist.
  return Status(ErrorCode::kUnauthenticated, "the access token is not valid");
}

Status Principal::sign_in(const StreamCatalog& catalog, std::string_view bearer, uint64_t now_ms, Refusal* refusal) {
  id_.clear();
  entry_ = nullptr;
  const size_t dot = bearer.rfind('.');
  if (bearer.empty()) {
    *refusal = Refusal::kMissing;
  } else if (dot == std::string_view::npos || !validate_token_id(bearer.substr(0, dot)).is_ok()) {
    *refusal = Refusal::kMalformed;
  } else if (const TokenEntry* entry = catalog.find_token(bearer.substr(0, dot)); entry == nullptr) {
    *refusal = Refusal::kUnknown;
  } else {
    const std::string hash = hash_secret(bearer);
    if (CRYPTO_memcmp(hash.data(), entry->secret_hash.data(), kTokenHashBytes) != 0) {
      *refusal = Refusal::kWrongSecret;
    } else if (entry->info.expires_ms != 0 && now_ms >= entry->info.expires_ms) {
      *refusal = Refusal::kExpired;
    } else {
      id_ = entry->info.id;
      hash_ = entry->secret_hash;
      entry_ = entry;
      version_ = catalog.token_version();
      return Status::ok();
    }
  }
  return unauthenticated(*refusal);
}

Status Principal::sign_in_as(const StreamCatalog& catalog, std::string_view id, uint64_t now_ms, Refusal* refusal) {
  id_.clear();
  entry_ = nullptr;
  const TokenEntry* entry = catalog.find_token(id);
  if (entry == nullptr) {
    *refusal = Refusal::kUnknown;
    return Status(ErrorCode::kUnauthenticated,
                  fmt::format("the client certificate names token '{}', which does not exist", id));
  }
  if (entry->info.expires_ms != 0 && now_ms >= entry->info.expires_ms) {
    *refusal = Refusal::kExpired;
    return unauthenticated(*refusal);
  }
  id_ = entry->info.id;
  hash_ = entry->secret_hash;
  entry_ = entry;
  version_ = catalog.token_version();
  return Status::ok();
}

const TokenInfo* Principal::current(const StreamCatalog& catalog, uint64_t now_ms, Refusal* refusal) {
  if (id_.empty()) {
    *refusal = Refusal::kMissing;
    return nullptr;
  }
  if (version_ != catalog.token_version()) {
    entry_ = catalog.find_token(id_);
    version_ = catalog.token_version();
    if (entry_ != nullptr && entry_->secret_hash != hash_) entry_ = nullptr;  // Revoked, then re-issued.
  }
  if (entry_ == nullptr) {
    *refusal = Refusal::kRevoked;
    return nullptr;
  }
  if (entry_->info.expires_ms != 0 && now_ms >= entry_->info.expires_ms) {
    *refusal = Refusal::kExpired;
    return nullptr;
  }
  return &entry_->info;
}

uint32_t op_for_opcode(uint16_t opcode) {
  using wire::Opcode;
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kRead:
    case Opcode::kSubscribe:
    case Opcode::kCheckTail:
      return kOpRead;
    case Opcode::kAppend:
      return kOpAppend;
    case Opcode::kCreateStream:
      return kOpCreateStream;
    case Opcode::kDeleteStream:
      return kOpDeleteStream;
    case Opcode::kReconfigureStream:
      return kOpReconfigureStream;
    case Opcode::kTrimStream:
      return kOpTrimStream;
    case Opcode::kSealStream:
      return kOpSealStream;
    case Opcode::kFenceStream:
      return kOpFenceStream;
    case Opcode::kCreateBucket:
      return kOpCreateBucket;
    case Opcode::kDeleteBucket:
      return kOpDeleteBucket;
    case Opcode::kReconfigureBucket:
      return kOpReconfigureBucket;
    case Opcode::kIssueToken:
      return kOpIssueToken;
    case Opcode::kRevokeToken:
      return kOpRevokeToken;
    case Opcode::kListTokens:
      return kOpListTokens;
    default:
      return 0;  // GET/LIST of buckets and streams: describing.
  }
}

Status authorize_stream(const TokenInfo& token, uint32_t op, std::string_view bucket, std::string_view stream) {
  const bool in_scope = token.buckets.matches(bucket) && token.streams.matches(stream);
  const bool allowed = op == 0 ? token.ops != 0 : (token.ops & op) != 0;
  if (in_scope && allowed) return Status::ok();
  if (op == 0) {
    return Status(ErrorCode::kPermissionDenied,
                  fmt::format("token '{}' may not see stream '{}' in bucket '{}'", token.id, stream, bucket));
  }
  return denied(token, op, fmt::format("stream '{}' in bucket '{}'", stream, bucket));
}

Status authorize_bucket(const TokenInfo& token, uint32_t op, std::string_view bucket) {
  const bool allowed = op == 0 ? token.ops != 0 : (token.ops & op) != 0;
  if (token.buckets.matches(bucket) && allowed) return Status::ok();
  if (op == 0) {
    return Status(ErrorCode::kPermissionDenied, fmt::format("token '{}' may not see bucket '{}'", token.id, bucket));
  }
  return denied(token, op, fmt::format("bucket '{}'", bucket));
}

Status authorize_token(const TokenInfo& token, uint32_t op, std::string_view id) {
  if (token.tokens.matches(id) && (token.ops & op) != 0) return Status::ok();
  return denied(token, op, fmt::format("token '{}'", id));
}

Status check_issue(const TokenInfo& issuer, const TokenInfo& wanted) {
  auto refuse = [&](std::string_view why) {
    return Status(ErrorCode::kPermissionDenied,
                  fmt::format("token '{}' may not issue token '{}': {}", issuer.id, wanted.id, why));
  };
  if ((issuer.ops & kOpIssueToken) == 0) return refuse("it lacks issue-token");
  if (!issuer.tokens.matches(wanted.id)) {
    return refuse(fmt::format("the id is outside its token scope '{}'", issuer.tokens.text()));
  }
  if (!wanted.buckets.within(issuer.buckets)) {
    return refuse(
        fmt::format("bucket scope '{}' is wider than its own '{}'", wanted.buckets.text(), issuer.buckets.text()));
  }
  if (!wanted.streams.within(issuer.streams)) {
    return refuse(
        fmt::format("stream scope '{}' is wider than its own '{}'", wanted.streams.text(), issuer.streams.text()));
  }
  // The token scope matters only to a token that manages tokens.
  if ((wanted.ops & kOpsManageTokens) != 0 && !wanted.tokens.within(issuer.tokens)) {
    return refuse(
        fmt::format("token scope '{}' is wider than its own '{}'", wanted.tokens.text(), issuer.tokens.text()));
  }
  if ((wanted.ops & ~issuer.ops) != 0) {
    return refuse(fmt::format("it lacks the operations {}", token_ops_text(wanted.ops & ~issuer.ops)));
  }
  if (issuer.expires_ms != 0 && (wanted.expires_ms == 0 || wanted.expires_ms > issuer.expires_ms)) {
    return refuse("it would outlive its issuer");
  }
  if (issuer.auto_prefix_streams && !wanted.auto_prefix_streams) return refuse("its issuer auto-prefixes streams");
  auto looser = [](uint64_t mine, uint64_t theirs) { return mine != 0 && (theirs == 0 || theirs > mine); };
  const TokenLimits& a = issuer.limits;
  const TokenLimits& b = wanted.limits;
  if (looser(a.append_bytes_per_s, b.append_bytes_per_s) || looser(a.append_records_per_s, b.append_records_per_s) ||
      looser(a.read_bytes_per_s, b.read_bytes_per_s) || looser(a.read_records_per_s, b.read_records_per_s) ||
      looser(a.connections_max, b.connections_max)) {
    return refuse("its limits would be looser than its issuer's");
  }
  return Status::ok();
}

Status validate_new_token(const TokenInfo& wanted, uint64_t now_ms) {
  if (Status s = validate_token_id(wanted.id); !s) return s;
  if (wanted.ops == 0) return Status(ErrorCode::kInvalidArgument, "a token needs at least one operation");
  if ((wanted.ops & ~kOpsAll) != 0) return Status(ErrorCode::kInvalidArgument, "unknown token operations");
  if (wanted.expires_ms != 0 && wanted.expires_ms <= now_ms) {
    return Status(ErrorCode::kInvalidArgument, "the token's expiry is in the past");
  }
  if (wanted.auto_prefix_streams && (!wanted.streams.prefix || wanted.streams.value.empty())) {
    return Status(ErrorCode::kInvalidArgument, "auto-prefixing needs a stream prefix scope (like 'app-*')");
  }
  for (const NameScope* scope : {&wanted.buckets, &wanted.streams, &wanted.tokens}) {
    if (scope->value.size() > 512) return Status(ErrorCode::kInvalidArgument, "a token scope is at most 512 bytes");
  }
  return Status::ok();
}

Status write_secret_file(const std::string& path, std::string_view secret) {
  const std::string tmp = path + ".tmp";
  auto fail = [&](std::string_view what) {
    const int err = errno;
    return Status(ErrorCode::kIoError, fmt::format("{} {}: {}", what, tmp, std::strerror(err)));
  };
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail("cannot create");
  std::string text = std::string(secret) + "\n";
  const bool written = ::fchmod(fd, 0600) == 0 &&
                       ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  OPENSSL_cleanse(text.data(), text.size());
  if (!written) {
    Status s = fail("cannot write");
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename");
  const std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 1 : path.rfind('/'));
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::ok();
}

std::string_view bearer_of(std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  // The scheme is case-insensitive (RFC 9110).
  for (size_t i = 0; i < kScheme.size(); i++) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return {};
    }
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  return token;
}

}  // namespace runnel::auth
