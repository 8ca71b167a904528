#include "units.h"

#include <charconv>
#include <utility>

namespace callbackd {
namespace {

// Splits "30s" into (30, "s"); nullopt when there is no leading number.
std::optional<std::pair<std::uint64_t, std::string_view>> split_number(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  return std::make_pair(value, text.substr(static_cast<std::size_t>(end - text.data())));
}

}  // namespace

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  auto parsed = split_number(text);
  if (!parsed || !parsed->second.empty()) return std::nullopt;
  return parsed->first;
}

std::optional<Millis> parse_duration(std::string_view text) {
  auto parsed = split_number(text);
  if (!parsed) return std::nullopt;
  static constexpr std::pair<std::string_view, std::int64_t> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
  for (const auto& [unit, ms] : kUnits) {
    if (parsed->second != unit) continue;
    // Refuse values that would overflow a 64-bit millisecond count.
    if (parsed->first > static_cast<std::uint64_t>(INT64_MAX / ms)) return std::nullopt;
    return Millis(static_cast<std::int64_t>(parsed->first) * ms);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  auto parsed = split_number(text);
  if (!parsed) return std::nullopt;
  static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
      {"", 1},      {"B", 1},         {"KiB", 1ULL << 10}, {"MiB", 1ULL << 20}, {"GiB", 1ULL << 30},
      {"KB", 1000}, {"MB", 1000'000}, {"GB", 1000'000'000}};
  for (const auto& [unit, size] : kUnits) {
    if (parsed->second != unit) continue;
    if (parsed->first > UINT64_MAX / size) return std::nullopt;
    return parsed->first * size;
  }
  return std::nullopt;
}

}  // namespace callbackd
