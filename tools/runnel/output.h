#pragma once
// How the runnel CLI prints: JSON objects (one per line) for --json, plain
// text otherwise; the exit status for each error class. UTF-8 checks and
// base64 for record bodies and headers are core/text.h's.

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runnel/types.h"

namespace runnel::cli {

// Exit statuses: a stable contract (runnel --help, tools/README.md).
enum Exit : int {
  kExitOk = 0,
  kExitUsage = 1,          // Bad command line, bad BUCKET/STREAM address.
  kExitNotFound = 2,       // not_found.
  kExitAlreadyExists = 3,  // already_exists (also: deleting a bucket that holds streams).
  kExitConflict = 4,       // seq_num_mismatch, fencing_token_mismatch, stream_sealed.
  kExitUnavailable = 5,    // unavailable, timeout (cannot connect), overloaded, shutting_down.
  kExitInvalid = 6,        // invalid_argument, too_large, out_of_range, bad input lines.
  kExitOther = 7,          // internal, io_error, no_space, unsupported, corrupt, output errors.
  kExitAuth = 8,           // unauthenticated, permission_denied.
};

int exit_code_for(client::ErrorCode code);

// What `runnel --help` prints after the commands.
extern const char* const kExitCodesHelp;

// Prints "runnel: MESSAGE" on stderr as one line (newlines become spaces).
void print_error(std::string_view message);

// stdout, buffered; a closed pipe (EPIPE) is remembered, not fatal.
class Out {
 public:
  static void line(std::string_view text);  // text + '\n'.
  static void json(const nlohmann::ordered_json& value);
  static void flush();
  // Whether every write so far went through, and if not, why.
  static bool broken_pipe();
  static std::optional<std::string> write_error();
};

nlohmann::ordered_json to_json(const client::StreamConfig& c);
nlohmann::ordered_json to_json(const client::StreamInfo& s);
nlohmann::ordered_json to_json(const client::BucketInfo& b);
// The same shape as the admin API's GET /v1/tokens items.
nlohmann::ordered_json to_json(const client::TokenInfo& t);
// {"seq_num","timestamp","headers":[[name,value],…],"body"}; "body_base64"
// where the body is not UTF-8, "headers_base64" (both halves encoded) where
// any header name or value is not.
nlohmann::ordered_json to_json(const client::Record& r);

// "key: value" lines for people.
std::string describe(const client::StreamInfo& s);
std::string describe(const client::BucketInfo& b);

}  // namespace runnel::cli
