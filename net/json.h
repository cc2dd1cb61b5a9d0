#pragma once
// Small JSON helpers for hand-built responses on the admin port.

#include <string>
#include <string_view>

namespace runnel {

// `text` as a JSON string literal, quotes included. Bytes that are not valid
// UTF-8 are replaced with U+FFFD so the output is always valid JSON.
std::string json_quote(std::string_view text);

// True if `text` is valid UTF-8 (no overlongs, surrogates or code points
// above U+10FFFF), so it can go into JSON as a string unchanged.
bool valid_utf8(std::string_view text);

}  // namespace runnel
