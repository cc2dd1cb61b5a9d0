#include "net/json.h"

#include <gtest/gtest.h>

#include <string>

namespace runnel {
namespace {

// U+FFFD REPLACEMENT CHARACTER, as UTF-8.
const std::string kReplacement = "\xEF\xBF\xBD";

std::string quoted(const std::string& inner) { return "\"" + inner + "\""; }

TEST(JsonQuote, WrapsEmptyTextInQuotes) { EXPECT_EQ(json_quote(""), "\"\""); }

TEST(JsonQuote, KeepsPlainAsciiAsIs) { EXPECT_EQ(json_quote("hello, world /v1"), quoted("hello, world /v1")); }

TEST(JsonQuote, EscapesDoubleQuotes) { EXPECT_EQ(json_quote("say \"hi\""), quoted("say \\\"hi\\\"")); }

TEST(JsonQuote, EscapesBackslashes) { EXPECT_EQ(json_quote("a\\b\\\\"), quoted("a\\\\b\\\\\\\\")); }

TEST(JsonQuote, UsesShortEscapesForNewlineReturnAndTab) {
  EXPECT_EQ(json_quote("a\nb\rc\td"), quoted("a\\nb\\rc\\td"));
}

TEST(JsonQuote, EscapesOtherControlCharactersAsUnicodeEscapes) {
  EXPECT_EQ(json_quote(std::string("\x01\x08\x0c\x1f", 4)), quoted("\\u0001\\u0008\\u000c\\u001f"));
}

TEST(JsonQuote, EscapesNulWithoutEndingTheString) {
  EXPECT_EQ(json_quote(std::string("a\0b", 3)), quoted("a\\u0000b"));
}

TEST(JsonQuote, EscapesDelete) { EXPECT_EQ(json_quote("\x7f"), quoted("\\u007f")); }

TEST(JsonQuote, KeepsValidTwoThreeAndFourByteSequences) {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";  // "café € 😀"
  EXPECT_EQ(json_quote(text), quoted(text));
}

TEST(JsonQuote, KeepsCodePointsAtTheEdgesOfTheValidRanges) {
  const std::string text =
      "\xC2\x80"            // U+0080, smallest two-byte
      "\xE0\xA0\x80"        // U+0800, smallest three-byte
      "\xED\x9F\xBF"        // U+D7FF, just below the surrogates
      "\xEE\x80\x80"        // U+E000, just above the surrogates
      "\xEF\xBF\xBF"        // U+FFFF
      "\xF0\x90\x80\x80"    // U+10000, smallest four-byte
      "\xF4\x8F\xBF\xBF";   // U+10FFFF, the largest code point
  EXPECT_EQ(json_quote(text), quoted(text));
}

TEST(JsonQuote, ReplacesALoneContinuationByte) { EXPECT_EQ(json_quote("a\x80z"), quoted("a" + kReplacement + "z")); }

TEST(JsonQuote, ReplacesEachByteOfAnOverlongTwoByteSequence) {
  // 0xC0 0xAF would be an overlong '/': the lead byte is never valid.
  EXPECT_EQ(json_quote("\xC0\xAF"), quoted(kReplacement + kReplacement));
}

TEST(JsonQuote, ReplacesEachByteOfAnOverlongThreeByteSequence) {
  EXPECT_EQ(json_quote("\xE0\x80\xAF"), quoted(kReplacement + kReplacement + kReplacement));
}

TEST(JsonQuote, ReplacesEachByteOfAnOverlongFourByteSequence) {
  EXPECT_EQ(json_quote("\xF0\x80\x80\xAF"), quoted(kReplacement + kReplacement + kReplacement + kReplacement));
}

TEST(JsonQuote, ReplacesEncodedSurrogates) {
  // U+D800 and U+DFFF encoded directly; UTF-8 forbids both.
  EXPECT_EQ(json_quote("\xED\xA0\x80"), quoted(kReplacement + kReplacement + kReplacement));
  EXPECT_EQ(json_quote("\xED\xBF\xBF"), quoted(kReplacement + kReplacement + kReplacement));
}

TEST(JsonQuote, ReplacesCodePointsAboveTheUnicodeRange) {
  // U+110000.
  EXPECT_EQ(json_quote("\xF4\x90\x80\x80"), quoted(kReplacement + kReplacement + kReplacement + kReplacement));
}

TEST(JsonQuote, ReplacesBytesThatCanNeverStartASequence) {
  EXPECT_EQ(json_quote("\xF8\xFE\xFF"), quoted(kReplacement + kReplacement + kReplacement));
}

TEST(JsonQuote, ReplacesASequenceTruncatedAtTheEnd) {
  // The first two bytes of '€' (E2 82 AC).
  EXPECT_EQ(json_quote("ok\xE2\x82"), quoted("ok" + kReplacement + kReplacement));
}

TEST(JsonQuote, ReplacesASequenceInterruptedByAnAsciiByteAndKeepsThatByte) {
  EXPECT_EQ(json_quote("\xE2\x82" "a"), quoted(kReplacement + kReplacement + "a"));
}

TEST(JsonQuote, KeepsValidTextAroundInvalidBytes) {
  EXPECT_EQ(json_quote("\xC3\xA9\xFF\xC3\xA9"), quoted("\xC3\xA9" + kReplacement + "\xC3\xA9"));
}

TEST(JsonQuote, EscapesAQuoteThatFollowsATruncatedSequence) {
  // The quote must not be swallowed as a would-be continuation byte.
  EXPECT_EQ(json_quote("\xC3\""), quoted(kReplacement + "\\\""));
}

}  // namespace
}  // namespace runnel
