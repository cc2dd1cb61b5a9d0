#include "tools/runnel/args.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <deque>
#include <utility>
#include <vector>

#include "tools/runnel/output.h"

namespace runnel::cli {

void ConfigFlags::apply(client::StreamConfig* c) const {
  if (timestamping) c->timestamping = *timestamping;
  if (retention_age_ms) c->retention_age_ms = *retention_age_ms;
  if (retention_bytes) c->retention_bytes = *retention_bytes;
  if (delete_on_empty_ms) c->delete_on_empty_ms = *delete_on_empty_ms;
  if (compress_lz4) c->compress_lz4 = *compress_lz4;
}

void ConfigFlags::apply(client::BucketConfig* c) const {
  apply(&c->default_stream_config);
  if (create_stream_on_append) c->create_stream_on_append = *create_stream_on_append;
  if (create_stream_on_read) c->create_stream_on_read = *create_stream_on_read;
}

namespace {

// Unsigned numbers: CLI11 would wrap "-1" around.
const CLI::Validator kDigits(
    [](std::string& text) -> std::string {
      if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
        return "'" + text + "' is not a non-negative integer";
      }
      return {};
    },
    "", "DIGITS");

// The text of one subcommand's config flags and their options, to tell
// which were given.
struct RawConfig {
  std::string timestamping;
  uint64_t retention_age_ms = 0;
  uint64_t retention_bytes = 0;
  uint64_t delete_on_empty_ms = 0;
  bool lz4 = false;
  bool on_append = false;
  bool on_read = false;
  CLI::Option* o_timestamping = nullptr;
  CLI::Option* o_age = nullptr;
  CLI::Option* o_bytes = nullptr;
  CLI::Option* o_empty = nullptr;
  CLI::Option* o_lz4 = nullptr;
  CLI::Option* o_on_append = nullptr;
  CLI::Option* o_on_read = nullptr;

  void add_to(CLI::App* app, bool bucket) {
    const std::string group = bucket ? "Default stream config" : "Stream config";
    o_timestamping = app->add_option("--timestamping", timestamping,
                                     "Where record timestamps come from: client-prefer (the client's, else "
                                     "arrival time), client-require (the client's, required), arrival")
                         ->check(CLI::IsMember({"client-prefer", "client-require", "arrival"}))
                         ->type_name("MODE")
                         ->group(group);
    o_age = app->add_option("--retention-age-ms", retention_age_ms, "Drop records older than this (0: keep)")
                ->type_name("MS")
                ->check(kDigits)
                ->group(group);
    o_bytes = app->add_option("--retention-bytes", retention_bytes, "Keep at most this many bytes (0: no limit)")
                  ->type_name("BYTES")
                  ->check(kDigits)
                  ->group(group);
    o_empty = app->add_option("--delete-on-empty-ms", delete_on_empty_ms,
                              "Delete the stream once it has been empty this long (0: never)")
                  ->type_name("MS")
                  ->check(kDigits)
                  ->group(group);
    o_lz4 = app->add_flag("--lz4,!--no-lz4", lz4, "Compress stored batches with LZ4 (or not)")->group(group);
    if (!bucket) return;
    o_on_append = app->add_flag("--create-stream-on-append,!--no-create-stream-on-append", on_append,
                                "An append to a missing stream creates it (or not)")
                      ->group("Bucket config");
    o_on_read = app->add_flag("--create-stream-on-read,!--no-create-stream-on-read", on_read,
                              "A read of a missing stream creates it (or not)")
                    ->group("Bucket config");
  }

  ConfigFlags flags() const {
    ConfigFlags f;
    client::Timestamping mode{};
    if (o_timestamping && o_timestamping->count() > 0 && parse_timestamping(timestamping, &mode)) f.timestamping = mode;
    if (o_age && o_age->count() > 0) f.retention_age_ms = retention_age_ms;
    if (o_bytes && o_bytes->count() > 0) f.retention_bytes = retention_bytes;
    if (o_empty && o_empty->count() > 0) f.delete_on_empty_ms = delete_on_empty_ms;
    if (o_lz4 && o_lz4->count() > 0) f.compress_lz4 = lz4;
    if (o_on_append && o_on_append->count() > 0) f.create_stream_on_append = on_append;
    if (o_on_read && o_on_read->count() > 0) f.create_stream_on_read = on_read;
    return f;
  }
};

// Everything CLI11 writes into while parsing.
struct Raw {
  std::string server = "127.0.0.1:7420";
  // token issue.
  std::string buckets = "*", streams = "*", tokens, ops = "read", expires_in;
  uint64_t append_bytes_per_s = 0, append_records_per_s = 0, read_bytes_per_s = 0, read_records_per_s = 0;
  uint32_t connections_max = 0;
  std::string address;  // BUCKET, or BUCKET/STREAM.
  std::string format = "text";
  uint64_t match_seq_num = 0;
  std::string fencing_token;
  uint64_t from_seq = 0;
  uint64_t from_time = 0;
  uint64_t from_tail = 0;
  uint64_t count = 0;
  std::deque<RawConfig> configs;  // Stable addresses.
};

struct Usage {
  std::string message;
};

void parse_server(const std::string& text, Invocation* inv) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) throw Usage{fmt::format("--server '{}' is not HOST:PORT", text)};
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = text.substr(colon + 1);
  unsigned long value = 0;
  size_t used = 0;
  try {
    value = std::stoul(port, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (port.empty() || used != port.size() || value == 0 || value > 65535) {
    throw Usage{fmt::format("--server '{}': bad port '{}'", text, port)};
  }
  inv->host = host;
  inv->port = static_cast<uint16_t>(value);
}

void split_stream_address(const std::string& text, Invocation* inv) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) {
    throw Usage{fmt::format("'{}' is not BUCKET/STREAM", text)};
  }
  inv->bucket = text.substr(0, slash);
  inv->stream = text.substr(slash + 1);
}

}  // namespace

std::optional<uint64_t> parse_duration_ms(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') digits++;
  if (digits == 0 || digits > 12) return std::nullopt;
  const uint64_t n = std::stoull(std::string(text.substr(0, digits)));
  const std::string_view unit = text.substr(digits);
  if (unit.empty() || unit == "ms") return n;
  if (unit == "s") return n * 1000;
  if (unit == "m") return n * 60'000;
  if (unit == "h") return n * 3'600'000;
  if (unit == "d") return n * 86'400'000;
  return std::nullopt;
}

std::variant<Invocation, int> parse_args(int argc, char** argv) {
  Invocation inv;
  Raw raw;
  CLI::App app("runnel: the Runnel command-line client", "runnel");
  app.fallthrough();  // Global options may come after the command too.
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("runnel ") + RUNNEL_VERSION);
  app.add_option("--server", raw.server, "The server's binary protocol address")
      ->type_name("HOST:PORT")
      ->envname("RUNNEL_SERVER")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->default_str("127.0.0.1:7420");
  app.add_option("--token", inv.token, "Access token, when the server runs with access control (--auth)")
      ->type_name("TOKEN")
      ->envname("RUNNEL_TOKEN")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--tls", inv.tls, "Speak TLS, trusting the system's CAs (a server started with --tls-cert)")
      ->envname("RUNNEL_TLS");
  app.add_option("--tls-ca", inv.tls_ca, "Speak TLS, trusting this CA certificate (PEM)")
      ->type_name("FILE")
      ->envname("RUNNEL_TLS_CA")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--tls-cert", inv.tls_cert, "With TLS: present this client certificate (PEM); needs --tls-key")
      ->type_name("FILE")
      ->envname("RUNNEL_TLS_CERT");
  app.add_option("--tls-key", inv.tls_key, "The client certificate's private key (PEM)")
      ->type_name("FILE")
      ->envname("RUNNEL_TLS_KEY");
  app.add_flag("--json", inv.json, "Print JSON objects, one per line");
  app.add_option("--timeout-ms", inv.timeout_ms, "Give up on a request (connecting included) after this long; 0: never")
      ->type_name("MS")
      ->check(kDigits)
      ->default_str("10000")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  std::vector<std::pair<CLI::App*, Command>> commands;
  auto add = [&](CLI::App* parent, const char* name, const char* help, Command command) {
    CLI::App* sub = parent->add_subcommand(name, help);
    commands.emplace_back(sub, command);
    return sub;
  };
  auto add_bucket_arg = [&](CLI::App* sub) { sub->add_option("BUCKET", raw.address, "The bucket")->required(); };
  auto add_stream_arg = [&](CLI::App* sub) {
    sub->add_option("BUCKET/STREAM", raw.address, "The stream (split at the first '/')")->required();
  };
  auto add_list_options = [&](CLI::App* sub) {
    sub->add_option("--prefix", inv.prefix, "Only names starting with this");
    sub->add_option("--start-after", inv.start_after, "Only names after this one")->type_name("NAME");
    sub->add_option("--limit", inv.limit, "At most this many (default: all, page by page)")
        ->type_name("N")
        ->check(kDigits);
    sub->add_flag("-l,--long", inv.long_format, "One tab-separated line of details per item, under a heading");
    sub->add_option("--page-size", inv.page_size, "Items asked for per request (at most 1000)")
        ->type_name("N")
        ->check(kDigits)
        ->check(CLI::Range(1u, 1000u))
        ->default_str("1000");
  };

  // Buckets.
  CLI::App* bucket = app.add_subcommand("bucket", "Manage buckets: create, list, get, delete, reconfigure");
  bucket->require_subcommand(1);
  CLI::App* sub = add(bucket, "create", "Create a bucket", Command::kBucketCreate);
  add_bucket_arg(sub);
  raw.configs.emplace_back().add_to(sub, true);
  sub = add(bucket, "list", "List buckets by name", Command::kBucketList);
  add_list_options(sub);
  sub = add(bucket, "get", "Show a bucket and its config", Command::kBucketGet);
  add_bucket_arg(sub);
  sub = add(bucket, "delete", "Delete a bucket (it must hold no streams)", Command::kBucketDelete);
  add_bucket_arg(sub);
  sub = add(bucket, "reconfigure", "Change a bucket's config (flags not given keep their value)",
            Command::kBucketReconfigure);
  add_bucket_arg(sub);
  raw.configs.emplace_back().add_to(sub, true);

  // Streams.
  CLI::App* stream =
      app.add_subcommand("stream", "Manage streams: create, list, get, reconfigure, delete, seal, trim, fence");
  stream->require_subcommand(1);
  sub = add(stream, "create", "Create a stream (config: the bucket's default, with any flags given applied)",
            Command::kStreamCreate);
  add_stream_arg(sub);
  raw.configs.emplace_back().add_to(sub, false);
  sub = add(stream, "list", "List a bucket's streams by name", Command::kStreamList);
  add_bucket_arg(sub);
  add_list_options(sub);
  sub = add(stream, "get", "Show a stream: config, state, tail", Command::kStreamGet);
  add_stream_arg(sub);
  sub = add(stream, "reconfigure", "Change a stream's config (flags not given keep their value)",
            Command::kStreamReconfigure);
  add_stream_arg(sub);
  raw.configs.emplace_back().add_to(sub, false);
  sub = add(stream, "delete", "Delete a stream and its records", Command::kStreamDelete);
  add_stream_arg(sub);
  sub = add(stream, "seal", "Make a stream read-only forever", Command::kStreamSeal);
  add_stream_arg(sub);
  sub = add(stream, "trim", "Drop the records below SEQ", Command::kStreamTrim);
  add_stream_arg(sub);
  sub->add_option("SEQ", inv.trim_seq, "The first seq_num to keep")->required()->check(kDigits);
  sub = add(stream, "fence", "Set the fencing token appends must carry (\"\" unfences)", Command::kStreamFence);
  add_stream_arg(sub);
  sub->add_option("TOKEN", inv.fence_token, "The token; \"\" removes the fence")->required();

  // Records.
  sub = add(&app, "append", "Append stdin to a stream, one record per line (newline stripped), in batches, pipelined",
            Command::kAppend);
  add_stream_arg(sub);
  sub->add_option("--format", raw.format,
                  "text: each line is a body; json: each line is {\"body\"|\"body_base64\":…, "
                  "\"headers\":[[name,value],…], \"timestamp\":MS}")
      ->check(CLI::IsMember({"text", "json"}))
      ->default_str("text");
  CLI::Option* o_match = sub->add_option("--match-seq-num", raw.match_seq_num,
                                         "Append only if the stream's tail is N (each later batch: N plus the "
                                         "records before it)")
                             ->type_name("N")
                             ->check(kDigits);
  CLI::Option* o_fence =
      sub->add_option("--fencing-token", raw.fencing_token, "The stream's fencing token")->type_name("TOKEN");
  sub->add_option("--batch-records", inv.batch_records, "Records per batch (at most 1000; batches stay under 1 MiB)")
      ->check(kDigits)
      ->check(CLI::Range(1u, 1000u))
      ->default_str("1000");
  sub->add_option("--linger-ms", inv.linger_ms, "How long to wait for more lines before sending a partial batch")
      ->check(kDigits)
      ->check(CLI::Range(0u, 60000u))
      ->default_str("5");
  sub->add_option("--in-flight", inv.in_flight, "Batches sent and not yet acknowledged, at most")
      ->check(kDigits)
      ->check(CLI::Range(1u, client::kIdempotentAppendsInFlight))
      ->default_str("16");

  sub =
      add(&app, "read", "Read records: from seq_num 0 to the tail by default; --follow keeps tailing", Command::kRead);
  add_stream_arg(sub);
  CLI::Option* o_seq =
      sub->add_option("--from-seq", raw.from_seq, "Start at this seq_num")->type_name("N")->check(kDigits);
  CLI::Option* o_time =
      sub->add_option("--from-time", raw.from_time, "Start at the first record at or after this time (ms)")
          ->type_name("MS")
          ->check(kDigits);
  CLI::Option* o_tail =
      sub->add_option("--from-tail", raw.from_tail, "Start N records before the tail")->type_name("N")->check(kDigits);
  o_seq->excludes(o_time)->excludes(o_tail);
  o_time->excludes(o_tail);
  CLI::Option* o_count = sub->add_option("--count", raw.count, "Stop after N records")->type_name("N")->check(kDigits);
  sub->add_flag("-f,--follow", inv.follow, "Keep reading records as they are appended, until --count or Ctrl-C");
  sub->add_flag("--meta", inv.show_meta, "Without --json: print SEQ_NUM<TAB>TIMESTAMP<TAB>BODY per record");

  sub = add(&app, "tail", "Show a stream's tail (the next seq_num) and last timestamp", Command::kTail);
  add_stream_arg(sub);

  // Access tokens.
  CLI::App* token = app.add_subcommand("token", "Manage access tokens: issue, list, revoke");
  token->require_subcommand(1);
  sub = add(token, "issue", "Issue an access token and print its secret (shown this once)", Command::kTokenIssue);
  sub->add_option("--id", inv.token_spec.id, "The token's id: 1..64 of a-z, 0-9, '-', '_'")->required();
  sub->add_option("--buckets", raw.buckets, "Buckets it reaches: NAME exactly, PREFIX* or * (default *)")
      ->type_name("SCOPE");
  sub->add_option("--streams", raw.streams, "Streams it reaches: NAME exactly, PREFIX* or * (default *)")
      ->type_name("SCOPE");
  sub->add_option("--tokens", raw.tokens,
                  "Token ids it may issue, list and revoke: NAME, PREFIX* or * (default: its own id)")
      ->type_name("SCOPE");
  sub->add_option("--ops", raw.ops,
                  "Operations, comma-separated: read, append, create-stream, delete-stream, reconfigure-stream, "
                  "trim-stream, seal-stream, fence-stream, create-bucket, delete-bucket, reconfigure-bucket, "
                  "issue-token, revoke-token, list-tokens; groups manage-streams, manage-buckets, manage-tokens, "
                  "all (default read)")
      ->type_name("LIST");
  sub->add_option("--expires-in", raw.expires_in, "Expire after this long: 90s, 15m, 24h, 7d (default: never)")
      ->type_name("DUR");
  sub->add_flag("--auto-prefix", inv.token_spec.auto_prefix_streams,
                "Prepend the --streams prefix to the stream names it sends, strip it from what it gets back");
  sub->add_option("--append-bytes-per-s", raw.append_bytes_per_s, "Limit its appends to N bytes/s per shard")
      ->type_name("N")
      ->check(kDigits);
  sub->add_option("--append-records-per-s", raw.append_records_per_s, "Limit its appends to N records/s per shard")
      ->type_name("N")
      ->check(kDigits);
  sub->add_option("--read-bytes-per-s", raw.read_bytes_per_s, "Limit its reads to N bytes/s per shard")
      ->type_name("N")
      ->check(kDigits);
  sub->add_option("--read-records-per-s", raw.read_records_per_s, "Limit its reads to N records/s per shard")
      ->type_name("N")
      ->check(kDigits);
  sub->add_option("--connections-max", raw.connections_max, "At most N binary connections at once per shard")
      ->type_name("N")
      ->check(kDigits);
  sub = add(token, "list", "List the access tokens this token may see, by id", Command::kTokenList);
  add_list_options(sub);
  sub = add(token, "revoke", "Revoke an access token: every connection using it ends within a second",
            Command::kTokenRevoke);
  sub->add_option("ID", inv.token_id, "The token's id")->required();

  // Set last so that the subcommands (which inherit it when created) do not repeat it.
  app.footer(
      fmt::format("A stream is addressed as BUCKET/STREAM, split at the first '/' (the stream name may hold more).\n"
                  "Run `runnel COMMAND --help` for a command's options.\n\n{}",
                  kExitCodesHelp));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return kExitOk;
  } catch (const CLI::CallForVersion& e) {
    std::fputs(e.what(), stdout);
    std::fputs("\n", stdout);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    print_error(fmt::format("{} (see runnel --help)", e.what()));
    return kExitUsage;
  }

  try {
    bool found = false;
    for (const auto& [app_of, command] : commands) {
      if (app_of->parsed()) {
        inv.command = command;
        found = true;
      }
    }
    if (!found) throw Usage{"no command given (see runnel --help)"};
    parse_server(raw.server, &inv);
    if (!inv.tls_ca.empty() || !inv.tls_cert.empty()) inv.tls = true;
    if (inv.tls_cert.empty() != inv.tls_key.empty()) throw Usage{"--tls-cert and --tls-key go together"};
    switch (inv.command) {
      case Command::kBucketCreate:
      case Command::kBucketGet:
      case Command::kBucketDelete:
      case Command::kBucketReconfigure:
      case Command::kStreamList:
        inv.bucket = raw.address;
        break;
      case Command::kBucketList:
      case Command::kTokenList:
      case Command::kTokenRevoke:
        break;
      case Command::kTokenIssue: {
        client::TokenInfo& t = inv.token_spec;
        t.buckets = client::NameScope::parse(raw.buckets);
        t.streams = client::NameScope::parse(raw.streams);
        t.tokens = raw.tokens.empty() ? client::NameScope{t.id, false} : client::NameScope::parse(raw.tokens);
        t.ops = 0;
        std::string_view list = raw.ops;
        while (!list.empty()) {
          const size_t comma = list.find(',');
          const std::string_view name = list.substr(0, comma);
          list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
          if (name.empty()) continue;
          const uint32_t op = parse_token_op(name);
          if (op == 0) throw Usage{fmt::format("--ops: unknown operation '{}' (see runnel token issue --help)", name)};
          t.ops |= op;
        }
        if (!raw.expires_in.empty()) {
          const auto ms = parse_duration_ms(raw.expires_in);
          if (!ms || *ms == 0)
            throw Usage{fmt::format("--expires-in '{}' is not a duration like 90s, 15m, 24h, 7d", raw.expires_in)};
          const auto now = std::chrono::system_clock::now().time_since_epoch();
          t.expires_ms =
              static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count()) + *ms;
        }
        t.limits = client::TokenLimits{raw.append_bytes_per_s, raw.append_records_per_s, raw.read_bytes_per_s,
                                       raw.read_records_per_s, raw.connections_max};
        break;
      }
      default:
        split_stream_address(raw.address, &inv);
    }
    for (const RawConfig& c : raw.configs) {
      ConfigFlags f = c.flags();
      if (f.any_stream_config() || f.create_stream_on_append || f.create_stream_on_read) inv.config = f;
    }
    inv.json_input = raw.format == "json";
    if (o_match->count() > 0) inv.match_seq_num = raw.match_seq_num;
    if (o_fence->count() > 0) inv.fencing_token = raw.fencing_token;
    if (o_seq->count() > 0) inv.start = client::Start::seq_num(raw.from_seq);
    if (o_time->count() > 0) inv.start = client::Start::timestamp(raw.from_time);
    if (o_tail->count() > 0) inv.start = client::Start::tail_offset(raw.from_tail);
    if (o_count->count() > 0) inv.count = raw.count;
  } catch (const Usage& u) {
    print_error(u.message);
    return kExitUsage;
  }
  return inv;
}

}  // namespace runnel::cli
