#include "tools/runnel/commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "core/text.h"
#include "tools/runnel/output.h"

namespace runnel::cli {

using client::BlockingClient;
using client::ErrorCode;
using nlohmann::ordered_json;

int fail(const Invocation& inv, const client::Status& status) {
  std::string text = status.to_string();
  if ((status.code() == ErrorCode::kSeqNumMismatch || status.code() == ErrorCode::kOutOfRange) &&
      text.find("tail") == std::string::npos) {
    text += fmt::format(" (tail {})", status.detail());
  }
  if (status.code() == ErrorCode::kTimeout || status.code() == ErrorCode::kUnavailable) {
    text += fmt::format(" (server {}:{}, --timeout-ms {})", inv.host, inv.port, inv.timeout_ms);
  }
  print_error(text);
  return exit_code_for(status.code());
}

int run(const Invocation& inv) {
  if ((inv.command == Command::kBucketReconfigure || inv.command == Command::kStreamReconfigure) &&
      !inv.config.any_stream_config() && !inv.config.create_stream_on_append && !inv.config.create_stream_on_read) {
    print_error("reconfigure: nothing to change; give at least one config flag (see --help)");
    return kExitUsage;
  }
  BlockingClient client({
      .host = inv.host,
      .port = inv.port,
      .token = inv.token,
      .client_name = "runnel-cli",
      .request_timeout_ms = inv.timeout_ms,
      .tls = inv.tls,
      .tls_ca_file = inv.tls_ca,
      .tls_cert_file = inv.tls_cert,
      .tls_key_file = inv.tls_key,
  });
  switch (inv.command) {
    case Command::kAppend:
      return run_append(client, inv);
    case Command::kRead:
      return run_read(client, inv);
    default:
      return run_admin(client, inv);
  }
}

namespace {

std::string stream_address(const Invocation& inv) { return inv.bucket + "/" + inv.stream; }

// What a listing pages by.
const std::string& list_key(const client::BucketInfo& b) { return b.name; }
const std::string& list_key(const client::StreamInfo& s) { return s.name; }
const std::string& list_key(const client::TokenInfo& t) { return t.id; }

// Pages through a listing until it ends or `limit` items (0: no limit) were printed.
template <typename T, typename ListPage, typename PrintItem>
int list_all(const Invocation& inv, ListPage list_page, PrintItem print_item) {
  client::ListOptions options{.prefix = inv.prefix, .start_after = inv.start_after, .limit = inv.page_size};
  uint64_t printed = 0;
  while (inv.limit == 0 || printed < inv.limit) {
    if (inv.limit != 0) options.limit = static_cast<uint32_t>(std::min<uint64_t>(inv.limit - printed, inv.page_size));
    client::Result<client::Page<T>> page = list_page(options);
    if (!page) return fail(inv, page.status());
    for (const T& item : page->items) {
      if (inv.limit != 0 && printed == inv.limit) break;
      print_item(item);
      printed++;
    }
    if (!page->more || page->items.empty()) break;
    options.start_after = list_key(page->items.back());
    if (Out::broken_pipe()) break;
  }
  return kExitOk;
}

void print_bucket(const Invocation& inv, const client::BucketInfo& b) {
  if (inv.json) {
    Out::json(to_json(b));
  } else {
    Out::line(describe(b));
  }
}

void print_stream(const Invocation& inv, const client::StreamInfo& s) {
  if (inv.json) {
    Out::json(to_json(s));
  } else {
    Out::line(describe(s));
  }
}

int bucket_command(BlockingClient& client, const Invocation& inv) {
  switch (inv.command) {
    case Command::kBucketCreate: {
      client::BucketConfig config;
      inv.config.apply(&config);
      auto info = client.create_bucket(inv.bucket, config);
      if (!info) return fail(inv, info.status());
      if (inv.json) {
        Out::json(to_json(*info));
      } else {
        Out::line(fmt::format("created bucket {}", info->name));
      }
      return kExitOk;
    }
    case Command::kBucketList: {
      if (inv.long_format && !inv.json) {
        Out::line("NAME\tCREATED_MS\tCREATE_STREAM_ON_APPEND\tCREATE_STREAM_ON_READ\tTIMESTAMPING");
      }
      return list_all<client::BucketInfo>(
          inv, [&](const client::ListOptions& o) { return client.list_buckets(o); },
          [&](const client::BucketInfo& b) {
            if (inv.json) {
              Out::json(to_json(b));
            } else if (inv.long_format) {
              Out::line(fmt::format("{}\t{}\t{}\t{}\t{}", printable(b.name), b.created_ms, b.config.create_stream_on_append,
                                    b.config.create_stream_on_read,
                                    timestamping_name(b.config.default_stream_config.timestamping)));
            } else {
              Out::line(printable(b.name));
            }
          });
    }
    case Command::kBucketGet: {
      auto info = client.get_bucket(inv.bucket);
      if (!info) return fail(inv, info.status());
      print_bucket(inv, *info);
      return kExitOk;
    }
    case Command::kBucketDelete: {
      client::Status st = client.delete_bucket(inv.bucket);
      if (!st) return fail(inv, st);
      if (inv.json) {
        Out::json(ordered_json{{"name", inv.bucket}, {"deleted", true}});
      } else {
        Out::line(fmt::format("deleted bucket {}", inv.bucket));
      }
      return kExitOk;
    }
    case Command::kBucketReconfigure: {
      // The call takes a whole config: start from the current one.
      auto current = client.get_bucket(inv.bucket);
      if (!current) return fail(inv, current.status());
      client::BucketConfig config = current->config;
      inv.config.apply(&config);
      auto info = client.reconfigure_bucket(inv.bucket, config);
      if (!info) return fail(inv, info.status());
      print_bucket(inv, *info);
      return kExitOk;
    }
    default:
      return kExitOther;
  }
}

int stream_command(BlockingClient& client, const Invocation& inv) {
  switch (inv.command) {
    case Command::kStreamCreate: {
      std::optional<client::StreamConfig> config;
      if (inv.config.any_stream_config()) {
        // The flags given, on top of the bucket's default.
        auto bucket = client.get_bucket(inv.bucket);
        if (!bucket) return fail(inv, bucket.status());
        config = bucket->config.default_stream_config;
        inv.config.apply(&*config);
      }
      auto info = client.create_stream(inv.bucket, inv.stream, config);
      if (!info) return fail(inv, info.status());
      if (inv.json) {
        Out::json(to_json(*info));
      } else {
        Out::line(fmt::format("created stream {}", stream_address(inv)));
      }
      return kExitOk;
    }
    case Command::kStreamList: {
      if (inv.long_format && !inv.json) Out::line("NAME\tTAIL\tTRIM_SEQ\tSEALED\tFENCED\tCREATED_MS");
      return list_all<client::StreamInfo>(
          inv, [&](const client::ListOptions& o) { return client.list_streams(inv.bucket, o); },
          [&](const client::StreamInfo& s) {
            if (inv.json) {
              Out::json(to_json(s));
            } else if (inv.long_format) {
              Out::line(
                  fmt::format("{}\t{}\t{}\t{}\t{}\t{}", printable(s.name), s.tail, s.trim_seq, s.sealed, s.fenced, s.created_ms));
            } else {
              Out::line(printable(s.name));
            }
          });
    }
    case Command::kStreamGet: {
      auto info = client.get_stream(inv.bucket, inv.stream);
      if (!info) return fail(inv, info.status());
      print_stream(inv, *info);
      return kExitOk;
    }
    case Command::kStreamReconfigure: {
      auto current = client.get_stream(inv.bucket, inv.stream);
      if (!current) return fail(inv, current.status());
      client::StreamConfig config = current->config;
      inv.config.apply(&config);
      auto info = client.reconfigure_stream(inv.bucket, inv.stream, config);
      if (!info) return fail(inv, info.status());
      print_stream(inv, *info);
      return kExitOk;
    }
    case Command::kStreamDelete: {
      client::Status st = client.delete_stream(inv.bucket, inv.stream);
      if (!st) return fail(inv, st);
      if (inv.json) {
        Out::json(ordered_json{{"bucket", inv.bucket}, {"name", inv.stream}, {"deleted", true}});
      } else {
        Out::line(fmt::format("deleted stream {}", stream_address(inv)));
      }
      return kExitOk;
    }
    case Command::kStreamSeal: {
      auto info = client.seal_stream(inv.bucket, inv.stream);
      if (!info) return fail(inv, info.status());
      if (inv.json) {
        Out::json(to_json(*info));
      } else {
        Out::line(fmt::format("sealed stream {} at tail {}", stream_address(inv), info->tail));
      }
      return kExitOk;
    }
    case Command::kStreamTrim: {
      auto info = client.trim_stream(inv.bucket, inv.stream, inv.trim_seq);
      if (!info) return fail(inv, info.status());
      if (inv.json) {
        Out::json(to_json(*info));
      } else {
        Out::line(
            fmt::format("trimmed stream {}: records below seq_num {} are gone", stream_address(inv), info->trim_seq));
      }
      return kExitOk;
    }
    case Command::kStreamFence: {
      auto info = client.fence_stream(inv.bucket, inv.stream, inv.fence_token);
      if (!info) return fail(inv, info.status());
      if (inv.json) {
        Out::json(to_json(*info));
      } else {
        Out::line(fmt::format("{} stream {}", inv.fence_token.empty() ? "unfenced" : "fenced", stream_address(inv)));
      }
      return kExitOk;
    }
    default:
      return kExitOther;
  }
}

int token_command(BlockingClient& client, const Invocation& inv) {
  switch (inv.command) {
    case Command::kTokenIssue: {
      auto issued = client.issue_token(inv.token_spec);
      if (!issued) return fail(inv, issued.status());
      if (inv.json) {
        Out::json(ordered_json{{"id", issued->info.id}, {"token", issued->token}, {"info", to_json(issued->info)}});
      } else {
        Out::line(issued->token);  // Only the secret, for `$(runnel token issue ...)`.
      }
      return kExitOk;
    }
    case Command::kTokenList: {
      if (inv.long_format && !inv.json) Out::line("ID\tBUCKETS\tSTREAMS\tTOKENS\tOPS\tEXPIRES_MS\tISSUED_BY");
      return list_all<client::TokenInfo>(
          inv, [&](const client::ListOptions& o) { return client.list_tokens(o); },
          [&](const client::TokenInfo& t) {
            if (inv.json) {
              Out::json(to_json(t));
            } else if (inv.long_format) {
              Out::line(fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}", printable(t.id), printable(t.buckets.text()),
                                    printable(t.streams.text()), printable(t.tokens.text()), token_ops_text(t.ops),
                                    t.expires_ms, t.issued_by.empty() ? "-" : printable(t.issued_by)));
            } else {
              Out::line(printable(t.id));
            }
          });
    }
    default: {
      auto revoked = client.revoke_token(inv.token_id);
      if (!revoked) return fail(inv, revoked.status());
      if (inv.json) {
        Out::json(ordered_json{{"id", revoked->id}, {"revoked", true}});
      } else {
        Out::line(fmt::format("revoked token {}", printable(revoked->id)));
      }
      return kExitOk;
    }
  }
}

}  // namespace

int run_admin(BlockingClient& client, const Invocation& inv) {
  switch (inv.command) {
    case Command::kBucketCreate:
    case Command::kBucketList:
    case Command::kBucketGet:
    case Command::kBucketDelete:
    case Command::kBucketReconfigure:
      return bucket_command(client, inv);
    case Command::kTokenIssue:
    case Command::kTokenList:
    case Command::kTokenRevoke:
      return token_command(client, inv);
    case Command::kTail: {
      auto tail = client.check_tail(inv.bucket, inv.stream);
      if (!tail) return fail(inv, tail.status());
      if (inv.json) {
        Out::json(ordered_json{{"tail", tail->tail}, {"last_timestamp", tail->last_timestamp}});
      } else {
        Out::line(fmt::format("tail: {}\nlast_timestamp: {}", tail->tail, tail->last_timestamp));
      }
      return kExitOk;
    }
    default:
      return stream_command(client, inv);
  }
}

}  // namespace runnel::cli
