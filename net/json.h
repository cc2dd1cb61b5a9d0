#pragma once
// Small JSON helpers for hand-built responses on the admin port.

#include <string>
#include <string_view>

namespace runnel {

// `text` as a JSON string literal, quotes included. Bytes that are not valid
// UTF-8 (core/text.h) are replaced with U+FFFD so the output is always valid
// JSON.
std::string json_quote(std::string_view text);

}  // namespace runnel
