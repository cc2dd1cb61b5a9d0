#pragma once
// Access tokens as the server checks them (docs/SECURITY.md): secrets,
// who is asking, and what each operation needs. Everything here is plain
// computation on one shard's replica of the token table
// (StreamCatalog::find_token); nothing blocks, nothing is shared.
//
// A token's secret is "<id>.<43 characters of base64url>": 256 random bits
// from OpenSSL's CSPRNG after the id. The server keeps SHA-256 of the whole
// string and compares hashes in constant time (CRYPTO_memcmp); the id in
// front only finds the entry.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "proto/values.h"
#include "storage/catalog.h"

namespace runnel::auth {

inline constexpr size_t kSecretRandomBytes = 32;

struct NewSecret {
  std::string token;  // Shown to the user once.
  std::string hash;   // Kept: SHA-256 of `token`.
};
NewSecret make_secret(std::string_view id);
std::string hash_secret(std::string_view token);

// Why a bearer was refused, for the metrics (auth_failures_total{reason}).
enum class Refusal { kMissing, kMalformed, kUnknown, kWrongSecret, kExpired, kRevoked };
inline constexpr int kRefusalKinds = 6;
const char* refusal_name(Refusal r);

// Who is asking on one connection (or one HTTP request): the token signed
// in with, re-checked cheaply on every request — a pointer into the shard's
// token table, kept while the table's version is unchanged, and the expiry.
class Principal {
 public:
  // Checks `bearer`; OK or kUnauthenticated (and *refusal says why).
  Status sign_in(const StreamCatalog& catalog, std::string_view bearer, uint64_t now_ms, Refusal* refusal);
  // Signs in as the token `id` without its secret: for a client whose TLS
  // certificate (verified against the configured client CA) names it.
  Status sign_in_as(const StreamCatalog& catalog, std::string_view id, uint64_t now_ms, Refusal* refusal);
  // The token as of now; null (with *refusal) once it is revoked or expired.
  const TokenInfo* current(const StreamCatalog& catalog, uint64_t now_ms, Refusal* refusal);
  bool signed_in() const { return !id_.empty(); }
  const std::string& id() const { return id_; }

 private:
  std::string id_;
  std::string hash_;  // Its secret's, so a token re-issued under the same id is not this one.
  const TokenEntry* entry_ = nullptr;
  uint64_t version_ = 0;
};

// The status a refused bearer gets.
Status unauthenticated(Refusal refusal);

// The operation a request needs: one TokenOp bit, or 0 where describing is
// enough (get and list: any operation on the resource).
uint32_t op_for_opcode(uint16_t opcode);

// OK, or kPermissionDenied naming the operation and the resource.
Status authorize_stream(const TokenInfo& token, uint32_t op, std::string_view bucket, std::string_view stream);
Status authorize_bucket(const TokenInfo& token, uint32_t op, std::string_view bucket);
Status authorize_token(const TokenInfo& token, uint32_t op, std::string_view id);

// What a listing shows this token.
inline bool may_see_bucket(const TokenInfo& token, std::string_view bucket) {
  return token.ops != 0 && token.buckets.matches(bucket);
}
inline bool may_see_stream(const TokenInfo& token, std::string_view bucket, std::string_view stream) {
  return may_see_bucket(token, bucket) && token.streams.matches(stream);
}

// Whether `issuer` may issue `wanted`: the id within its token scope, every
// scope within its own, its operations a subset, an expiry no later, limits
// no looser, auto-prefixing kept. OK or kPermissionDenied saying which.
Status check_issue(const TokenInfo& issuer, const TokenInfo& wanted);

// Shape rules for a token to be issued (id, auto-prefix needs a prefix
// scope, known operations, expiry in the future). kInvalidArgument.
Status validate_new_token(const TokenInfo& wanted, uint64_t now_ms);

// The root token's file, in the data directory (--auth's first start).
inline constexpr std::string_view kRootTokenFile = "root-token";
// Writes `secret` and a newline to `path`, mode 0600, durably (a temporary
// file, fsync, rename, fsync of the directory). Blocking: startup only.
Status write_secret_file(const std::string& path, std::string_view secret);

// The bearer of an HTTP Authorization header ("Bearer X"), or "" if none.
std::string_view bearer_of(std::string_view authorization);

}  // namespace runnel::auth
