#pragma once
// Text codecs every layer shares: strict UTF-8 validation and standard
// base64. The one definition of each — the config (paths), the catalog
// (stream names), the admin REST API and JSON output, and the runnel CLI all
// call these. Header-only on purpose: the CLI links only librunnel, which
// does not export runnel_base's symbols, so a definition in a .cc file would
// not reach it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace runnel {

// Length (1..4) of the well-formed UTF-8 sequence at the front of `s`, or 0
// if `s` is empty or does not start with one. Well-formed is RFC 3629: no
// overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
// truncated sequence. This is what JSON and TOML accept. NUL is one byte of
// valid UTF-8; callers that refuse it check for it themselves.
inline size_t utf8_sequence_bytes(std::string_view s) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<uint8_t>(s[0]);
  if (b0 < 0x80) return 1;
  size_t n = 0;
  // The allowed range of the second byte depends on the first; this is where
  // overlong forms, surrogates and values above U+10FFFF are excluded.
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // Below is overlong.
    if (b0 == 0xED) hi = 0x9F;  // Above is a surrogate.
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // Below is overlong.
    if (b0 == 0xF4) hi = 0x8F;  // Above is past U+10FFFF.
  } else {
    return 0;  // A continuation byte, an overlong lead (C0, C1), or F5..FF.
  }
  if (s.size() < n) return 0;
  const auto b1 = static_cast<uint8_t>(s[1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t i = 2; i < n; i++) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return n;
}

// How many bytes at the front of `s` are well-formed UTF-8: s.size() if all
// of it is, else the offset of the first bad sequence.
inline size_t utf8_valid_prefix_bytes(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = utf8_sequence_bytes(s.substr(i));
    if (n == 0) break;
    i += n;
  }
  return i;
}

// True if all of `text` is well-formed UTF-8 (see utf8_sequence_bytes).
inline bool valid_utf8(std::string_view text) { return utf8_valid_prefix_bytes(text) == text.size(); }

// `text` safe to print on a terminal: control characters (C0, DEL, and C1
// as UTF-8 encodes them) become \xNN escapes, so a name someone else chose
// cannot move the cursor, clear the screen or retitle the window. Everything
// else, invalid UTF-8 included, is left as it is.
inline std::string printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  auto escape = [&out](unsigned char c) {
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  };
  for (size_t i = 0; i < text.size(); i++) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      escape(c);
    } else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      escape(c);  // U+0080..U+009F: the C1 controls (CSI is U+009B).
      escape(static_cast<unsigned char>(text[++i]));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Standard base64 (RFC 4648 alphabet, "+/") with '=' padding.
inline std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto byte = [&](size_t i) { return uint32_t{static_cast<unsigned char>(bytes[i])}; };
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = byte(i) << 16;
    if (rest == 2) v |= byte(i + 1) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Decodes standard base64 into *out. Takes it padded or unpadded; refuses
// (false, *out then unspecified) any character outside the alphabet,
// whitespace included, '=' anywhere but as the last one or two characters
// of a whole 4-character group, and a length no byte count encodes to
// (4k+1 characters). Bits below the last whole byte are ignored, as RFC 4648
// allows, so a few texts that encode() never makes also decode.
[[nodiscard]] inline bool base64_decode(std::string_view text, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  // Padding: at most two '=', only at the end of a 4-character group.
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') pad++;
  if (pad > 0 && text.size() % 4 != 0) return false;
  text.remove_suffix(pad);
  if (text.size() % 4 == 1) return false;
  out->clear();
  out->reserve(text.size() / 4 * 3 + 2);
  uint32_t bits = 0;
  int nbits = 0;
  for (char c : text) {
    const int v = value(c);
    if (v < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out->push_back(static_cast<char>((bits >> nbits) & 0xFF));
    }
  }
  return true;
}

}  // namespace runnel
