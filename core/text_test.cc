// core/text.h: strict UTF-8 validation and standard base64. Invalid input as
// often as valid; the UTF-8 check is also compared, over every 1- and 2-byte
// input, every 3-byte one that starts with a lead byte and a slice of the
// 4-byte ones, with a decoder written from the code-point rules instead of
// the byte ranges.

#include "core/text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>

namespace runnel {
namespace {

using namespace std::string_literals;

// --- UTF-8 -------------------------------------------------------------------

// A reference decoder: decode the code point by its lead byte's length, then
// refuse overlong forms, surrogates and values above U+10FFFF by value.
bool reference_valid_utf8(std::string_view s) {
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t length = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      length = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < length) return false;
    for (size_t k = 1; k < length; k++) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < kMinForLength[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out.push_back(static_cast<char>(b));
  return out;
}

TEST(TextUtf8, AcceptsAsciiNulAndEmptyText) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain ascii ~"));
  EXPECT_TRUE(valid_utf8("a\0b"s));  // NUL is valid UTF-8; callers that refuse it say so.
  EXPECT_TRUE(valid_utf8("\x7F"));
}

TEST(TextUtf8, AcceptsMultiByteTextAndEveryBoundaryCodePoint) {
  EXPECT_TRUE(valid_utf8("\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_TRUE(valid_utf8("\xC2\x80"));                                // U+0080
  EXPECT_TRUE(valid_utf8("\xDF\xBF"));                                // U+07FF
  EXPECT_TRUE(valid_utf8("\xE0\xA0\x80"));                            // U+0800
  EXPECT_TRUE(valid_utf8("\xED\x9F\xBF"));                            // U+D7FF, below the surrogates.
  EXPECT_TRUE(valid_utf8("\xEE\x80\x80"));                            // U+E000, above them.
  EXPECT_TRUE(valid_utf8("\xEF\xBF\xBF"));                            // U+FFFF
  EXPECT_TRUE(valid_utf8("\xF0\x90\x80\x80"));                        // U+10000
  EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));                        // U+10FFFF
}

TEST(TextUtf8, RefusesOverlongForms) {
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));          // '/' in two bytes.
  EXPECT_FALSE(valid_utf8("\xC0\x80"));          // NUL in two bytes ("modified UTF-8").
  EXPECT_FALSE(valid_utf8("\xC1\xBF"));          // U+007F in two bytes.
  EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));      // '/' in three bytes.
  EXPECT_FALSE(valid_utf8("\xE0\x9F\xBF"));      // U+07FF in three bytes.
  EXPECT_FALSE(valid_utf8("\xF0\x80\x80\xAF"));  // '/' in four bytes.
  EXPECT_FALSE(valid_utf8("\xF0\x8F\xBF\xBF"));  // U+FFFF in four bytes.
}

TEST(TextUtf8, RefusesSurrogates) {
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));                  // U+D800
  EXPECT_FALSE(valid_utf8("\xED\xBF\xBF"));                  // U+DFFF
  EXPECT_FALSE(valid_utf8("\xED\xA0\xBD\xED\xB8\x80"));      // A CESU-8 pair for U+1F600.
}

TEST(TextUtf8, RefusesCodePointsAboveTheMaximum) {
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));      // U+110000
  EXPECT_FALSE(valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(valid_utf8("\xF7\xBF\xBF\xBF"));      // U+1FFFFF
  EXPECT_FALSE(valid_utf8("\xF8\x88\x80\x80\x80"));  // Five-byte form.
  EXPECT_FALSE(valid_utf8("\xFE"));
  EXPECT_FALSE(valid_utf8("\xFF"));
}

TEST(TextUtf8, RefusesTruncatedSequences) {
  EXPECT_FALSE(valid_utf8("\xC3"));
  EXPECT_FALSE(valid_utf8("\xE2\x82"));
  EXPECT_FALSE(valid_utf8("\xF0\x9F\x98"));
  EXPECT_FALSE(valid_utf8("ok\xF0\x9F\x98"));  // At the end of valid text.
  EXPECT_FALSE(valid_utf8("\xE2\x82z"));       // Cut short by an ASCII byte.
  EXPECT_FALSE(valid_utf8("\xC3\xC3\xA9"));    // Cut short by another lead byte.
}

TEST(TextUtf8, RefusesStrayContinuationBytes) {
  EXPECT_FALSE(valid_utf8("\x80"));
  EXPECT_FALSE(valid_utf8("a\xBF"));
  EXPECT_FALSE(valid_utf8("\xC3\xA9\xA9"));  // One continuation too many.
}

TEST(TextUtf8, SequenceBytesIsTheLengthOfTheFirstCharacterOrZero) {
  EXPECT_EQ(utf8_sequence_bytes(""), 0u);
  EXPECT_EQ(utf8_sequence_bytes("ab"), 1u);
  EXPECT_EQ(utf8_sequence_bytes("\xC3\xA9z"), 2u);
  EXPECT_EQ(utf8_sequence_bytes("\xE2\x82\xAC"), 3u);
  EXPECT_EQ(utf8_sequence_bytes("\xF0\x9F\x98\x80z"), 4u);
  EXPECT_EQ(utf8_sequence_bytes("\xE2\x82"), 0u);
  EXPECT_EQ(utf8_sequence_bytes("\xED\xA0\x80"), 0u);
}

TEST(TextUtf8, ValidPrefixStopsAtTheFirstBadSequence) {
  EXPECT_EQ(utf8_valid_prefix_bytes(""), 0u);
  EXPECT_EQ(utf8_valid_prefix_bytes("abc"), 3u);
  EXPECT_EQ(utf8_valid_prefix_bytes("ab\xFF"), 2u);
  EXPECT_EQ(utf8_valid_prefix_bytes("\xC3\xA9\xE2\x82"), 2u);
  EXPECT_EQ(utf8_valid_prefix_bytes("\x80\xC3\xA9"), 0u);
}

TEST(TextUtf8, AgreesWithTheReferenceOnEveryShortInput) {
  for (int a = 0; a < 256; a++) {
    const std::string one = bytes({a});
    ASSERT_EQ(valid_utf8(one), reference_valid_utf8(one)) << a;
    for (int b = 0; b < 256; b++) {
      const std::string two = bytes({a, b});
      ASSERT_EQ(valid_utf8(two), reference_valid_utf8(two)) << a << ' ' << b;
      for (int c = 0; c < 256 && a >= 0xC0; c++) {  // Three bytes: after every lead byte.
        const std::string three = bytes({a, b, c});
        ASSERT_EQ(valid_utf8(three), reference_valid_utf8(three)) << a << ' ' << b << ' ' << c;
      }
    }
  }
}

TEST(TextUtf8, AgreesWithTheReferenceAroundTheFourByteLeads) {
  // Every second and third byte after the leads where the rules change;
  // the fourth byte at the edges of the continuation range.
  for (int a = 0xEF; a <= 0xF8; a++) {
    for (int b = 0; b < 256; b++) {
      for (int c = 0; c < 256; c++) {
        for (int d : {0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xFF}) {
          const std::string four = bytes({a, b, c, d});
          ASSERT_EQ(valid_utf8(four), reference_valid_utf8(four)) << a << ' ' << b << ' ' << c << ' ' << d;
        }
      }
    }
  }
}

// --- base64 ------------------------------------------------------------------

TEST(TextBase64, EncodesTheRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(TextBase64, EncodesWithTheStandardAlphabet) {
  EXPECT_EQ(base64_encode("\xFB\xFF\xBF"), "+/+/");  // Not the URL-safe "-_".
  EXPECT_EQ(base64_encode("\0\0\0"s), "AAAA");
}

TEST(TextBase64, DecodesTheRfc4648VectorsPaddedAndUnpadded) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"Zg==", "f"}, {"Zm8=", "fo"}, {"Zm9v", "foo"}, {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"},
      {"Zm9vYmFy", "foobar"}, {"Zg", "f"}, {"Zm8", "fo"}, {"Zm9vYg", "foob"}, {"Zm9vYmE", "fooba"},
  };
  for (const auto& [text, plain] : vectors) {
    std::string out = "stale";
    ASSERT_TRUE(base64_decode(text, &out)) << text;
    EXPECT_EQ(out, plain) << text;
  }
}

TEST(TextBase64, RoundTripsEveryByteAtEveryLength) {
  std::string all;
  for (int c = 0; c < 256; c++) all.push_back(static_cast<char>(c));
  for (size_t n = 0; n <= all.size(); n++) {
    const std::string plain = all.substr(all.size() - n);
    const std::string text = base64_encode(plain);
    EXPECT_EQ(text.size() % 4, 0u);
    std::string out;
    ASSERT_TRUE(base64_decode(text, &out)) << n;
    EXPECT_EQ(out, plain) << n;
  }
}

TEST(TextBase64, RefusesCharactersOutsideTheAlphabet) {
  std::string out;
  EXPECT_FALSE(base64_decode("Zm9v!", &out));
  EXPECT_FALSE(base64_decode("Zm9v YmFy", &out));   // Whitespace.
  EXPECT_FALSE(base64_decode("Zm9v\nYmFy", &out));  // Line breaks.
  EXPECT_FALSE(base64_decode("-_-_", &out));        // The URL-safe alphabet.
  EXPECT_FALSE(base64_decode("Zm9\xC3\xA9", &out));
  EXPECT_FALSE(base64_decode("Zm\0v"s, &out));
}

TEST(TextBase64, RefusesLengthsNoByteCountEncodesTo) {
  std::string out;
  EXPECT_FALSE(base64_decode("Z", &out));      // One character cannot hold a byte.
  EXPECT_FALSE(base64_decode("Zm9vY", &out));  // Nor can 4k+1.
}

TEST(TextBase64, RefusesMisplacedPadding) {
  std::string out;
  EXPECT_FALSE(base64_decode("=", &out));
  EXPECT_FALSE(base64_decode("==", &out));
  EXPECT_FALSE(base64_decode("====", &out));
  EXPECT_FALSE(base64_decode("Zm=v", &out));      // Inside a group.
  EXPECT_FALSE(base64_decode("Zg=", &out));       // On a group that is not whole.
  EXPECT_FALSE(base64_decode("Zm8==", &out));
  EXPECT_FALSE(base64_decode("Z===", &out));      // Three '='.
  EXPECT_FALSE(base64_decode("Zg==Zg==", &out));  // Data after padding.
}

TEST(TextBase64, IgnoresBitsBelowTheLastByte) {
  // RFC 4648 lets a decoder ignore them; encode() always writes zeros there.
  std::string out;
  ASSERT_TRUE(base64_decode("Zh==", &out));
  EXPECT_EQ(out, "f");
  EXPECT_EQ(base64_encode(out), "Zg==");
}

TEST(TextPrintable, EscapesControlCharactersAndLeavesTheRest) {
  EXPECT_EQ(printable("orders/eu-1"), "orders/eu-1");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");  // UTF-8 stays.
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(printable(std::string("\0\t\n\x7f", 4)), "\\x00\\x09\\x0a\\x7f");
  EXPECT_EQ(printable("\xc2\x9b" "31m"), "\\xc2\\x9b31m");  // CSI as a C1 control.
  EXPECT_EQ(printable("\xc2\xa0"), "\xc2\xa0");               // U+00A0 is not a control.
  EXPECT_EQ(printable("\xc2"), "\xc2");                         // Truncated: left as it is.
  // Nothing printed from any byte string is a control character.
  std::string all;
  for (int c = 0; c < 256; c++) all.push_back(static_cast<char>(c));
  for (char c : printable(all)) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7f);
}

}  // namespace
}  // namespace runnel
