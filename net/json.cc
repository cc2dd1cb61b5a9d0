#include "net/json.h"

#include <fmt/format.h>

#include "core/text.h"

namespace runnel {

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
    size_t n = utf8_sequence_bytes(text.substr(i));
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
