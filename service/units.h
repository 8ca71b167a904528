// Text forms of configuration values: durations with units, byte sizes, counts.
#pragma once

#include <callbackd/clock.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd {

// "250ms", "30s", "5m", "2h", "7d" (a non-negative integer and one unit, no spaces).
std::optional<Millis> parse_duration(std::string_view text);
// "1048576", "512KiB", "1MiB", "2GiB" (also KB/MB/GB as 1000-based).
std::optional<std::uint64_t> parse_byte_size(std::string_view text);
// Decimal digits only, no sign, fits in 64 bits.
std::optional<std::uint64_t> parse_unsigned(std::string_view text);

}  // namespace callbackd
