// libFuzzer target for the config parser: the TOML file is operator input, and
// a bad one must give an error, never a crash. Whatever parses must also
// survive a round trip through config_to_toml unchanged.
//
// Beyond the whole-document path, the first byte picks a key and the rest is
// fed to apply_setting as if it came from a flag or the environment, so the
// integer, host:port, log level and path parsers see raw bytes too.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/assert.h"
#include "core/config.h"

namespace {

// A config that parsed must print as TOML that parses back to the same config
// and prints the same text again.
void check_round_trip(const runnel::Config& config) {
  std::string printed = runnel::config_to_toml(config);
  runnel::Config again;
  runnel::Status status = runnel::apply_toml(&again, printed, "printed config");
  RUNNEL_ASSERT(status.is_ok());
  RUNNEL_ASSERT(runnel::config_to_toml(again) == printed);
  RUNNEL_ASSERT(again == config);
  // JSON must not throw on anything a parser let through.
  RUNNEL_ASSERT(!runnel::config_to_json(config).empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);

  runnel::Config config;
  runnel::Status status = runnel::apply_toml(&config, bytes, "fuzz input");
  if (status.is_ok()) {
    check_round_trip(config);
  } else {
    // Errors are all-or-nothing.
    RUNNEL_ASSERT(config == runnel::Config{});
    RUNNEL_ASSERT(!status.message().empty());
  }

  if (size > 0) {
    const auto keys = runnel::config_keys();
    std::string_view key = keys[data[0] % keys.size()];
    runnel::Config one;
    status = runnel::apply_setting(&one, key, bytes.substr(1), "fuzz setting");
    if (status.is_ok()) {
      check_round_trip(one);
    } else {
      RUNNEL_ASSERT(one == runnel::Config{});
    }
  }
  return 0;
}
