// Replays a libFuzzer corpus directory through LLVMFuzzerTestOneInput as a
// GoogleTest, so the checked-in corpus runs in every ctest invocation.
// Usage: fuzz_<name>_replay CORPUS_DIR [gtest flags]

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
std::string g_corpus_dir;

TEST(FuzzReplay, EveryCorpusFileRunsCleanly) {
  ASSERT_FALSE(g_corpus_dir.empty()) << "usage: replay CORPUS_DIR";
  ASSERT_TRUE(std::filesystem::is_directory(g_corpus_dir)) << g_corpus_dir;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(g_corpus_dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  ASSERT_FALSE(files.empty()) << "empty corpus: " << g_corpus_dir;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(path.string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(bytes.data(), bytes.size()), 0);
  }
  std::printf("replayed %zu corpus files from %s\n", files.size(), g_corpus_dir.c_str());
}
}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (argc > 1) g_corpus_dir = argv[1];
  return RUN_ALL_TESTS();
}
