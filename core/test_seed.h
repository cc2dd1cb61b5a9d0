#pragma once
// Seeds for randomised tests (tests only: it needs GoogleTest). Every test
// that draws random numbers takes its seed from here, so that a failure can
// be replayed:
//
//   RUNNEL_SEED=1234 build/release/storage/storage_test --gtest_filter='ShardLogFaults.*'
//
// Without RUNNEL_SEED a fresh seed is drawn from std::random_device. Either
// way the seed is printed on stderr ("RUNNEL_SEED=<n> (set it to replay)")
// and recorded as the test's "RUNNEL_SEED" property (in --gtest_output XML).
// Tests that run several seeds in a row also name the one that failed with
// seed_trace() in a SCOPED_TRACE.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace runnel {

// RUNNEL_SEED, if it is set (a decimal number).
inline bool seed_from_env(uint64_t* seed) {
  const char* env = std::getenv("RUNNEL_SEED");
  if (env == nullptr || *env == '\0') return false;
  char* end = nullptr;
  *seed = std::strtoull(env, &end, 10);
  if (end == env || *end != '\0') {
    ADD_FAILURE() << "RUNNEL_SEED must be a decimal number, not '" << env << "'";
    return false;
  }
  return true;
}

// "RUNNEL_SEED=<n>": for SCOPED_TRACE, so a failure names its seed.
inline std::string seed_trace(uint64_t seed) { return "RUNNEL_SEED=" + std::to_string(seed); }

// The seed of the running test: RUNNEL_SEED if set (*replaying), else a
// fresh one. Printed and recorded once per call.
inline uint64_t pick_test_seed(bool* replaying) {
  uint64_t seed = 0;
  *replaying = seed_from_env(&seed);
  if (!*replaying) {
    std::random_device rd;
    seed = (uint64_t{rd()} << 32) | rd();
  }
  ::testing::Test::RecordProperty("RUNNEL_SEED", std::to_string(seed));
  std::fprintf(stderr, "%s (%s)\n", seed_trace(seed).c_str(), *replaying ? "replaying" : "set it to replay");
  return seed;
}

// The seed of the running test; call it once per test.
inline uint64_t test_seed() {
  bool replaying = false;
  return pick_test_seed(&replaying);
}

// For tests that run `count` seeds in a row: consecutive seeds from a fresh
// one, or only RUNNEL_SEED when it is set (replaying the one that failed).
// Each iteration should SCOPED_TRACE(seed_trace(seed)).
inline std::vector<uint64_t> test_seeds(uint64_t count) {
  bool replaying = false;
  const uint64_t base = pick_test_seed(&replaying);
  if (replaying) return {base};
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < count; i++) out.push_back(base + i);
  if (count > 1) {
    std::fprintf(stderr, "  ... and the next %llu seeds up to RUNNEL_SEED=%llu\n",
                 static_cast<unsigned long long>(count - 1), static_cast<unsigned long long>(base + count - 1));
  }
  return out;
}

}  // namespace runnel
