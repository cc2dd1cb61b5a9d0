#pragma once
// Little-endian fixed-width integers in byte strings: the one codec behind
// Runnel's own binary files (segment summaries, catalog records) and the
// wire format. Every supported target is little-endian (asserted), so a
// value's bytes are its memory; memcpy keeps unaligned access defined.

#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace runnel {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "Runnel's formats are little-endian");

// Appends the sizeof(T) bytes of `v` to *out.
template <typename T>
void put_le(std::string* out, T v) {
  static_assert(std::is_integral_v<T> || std::is_enum_v<T>);
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

// Takes sizeof(T) bytes off the front of *in into *v; false (nothing taken)
// if fewer remain.
template <typename T>
[[nodiscard]] bool take_le(std::string_view* in, T* v) {
  static_assert(std::is_integral_v<T> || std::is_enum_v<T>);
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

// Reads a T at `p` (no bounds check: the caller knows the size).
template <typename T>
T load_le(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Writes `v` at `p`, over bytes already there (no bounds check: the caller
// knows the size), e.g. a length patched in once what it counts is known.
template <typename T>
void store_le(void* p, T v) {
  static_assert(std::is_integral_v<T> || std::is_enum_v<T>);
  std::memcpy(p, &v, sizeof(T));
}

}  // namespace runnel
