#include "net/json.h"

#include <fmt/format.h>

namespace runnel {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  if (n == 2 && c < 0xC2) return 0;                                // Overlong.
  if (n == 3 && c == 0xE0 && byte(i + 1) < 0xA0) return 0;         // Overlong.
  if (n == 3 && c == 0xED && byte(i + 1) >= 0xA0) return 0;        // Surrogate.
  if (n == 4 && c == 0xF0 && byte(i + 1) < 0x90) return 0;         // Overlong.
  if (n == 4 && (c > 0xF4 || (c == 0xF4 && byte(i + 1) >= 0x90))) return 0;  // > U+10FFFF.
  return n;
}

}  // namespace

bool valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_sequence_length(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string json_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '"': out += "\\\""; i++; continue;
      case '\\': out += "\\\\"; i++; continue;
      case '\n': out += "\\n"; i++; continue;
      case '\r': out += "\\r"; i++; continue;
      case '\t': out += "\\t"; i++; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\u{:04x}", c);
      i++;
      continue;
    }
    size_t n = utf8_sequence_length(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      i++;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  out.push_back('"');
  return out;
}

}  // namespace runnel
