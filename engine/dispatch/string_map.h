// An unordered map keyed by std::string that can be searched with a std::string_view without
// building a string first (hot paths look hosts and apps up on every attempt).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace callbackd {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

template <class Value>
using StringMap = std::unordered_map<std::string, Value, StringHash, std::equal_to<>>;

}  // namespace callbackd
