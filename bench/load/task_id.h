// What the load tool puts in each task id so that its receiver can tell, from the body alone,
// which send a delivery belongs to and when that send was scheduled:
//   <run>-<index>-<scheduled microseconds on the steady clock>
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd::load {

enum class Kind { kGood, kSilent, kSlow, kFail };
constexpr int kKinds = 4;
constexpr const char* kind_name(Kind k) {
  constexpr const char* names[] = {"good", "silent", "slow", "fail"};
  return names[static_cast<int>(k)];
}

inline std::int64_t steady_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct TaskRef {
  std::uint64_t index;
  std::int64_t scheduled_us;
};

inline std::string make_task_id(std::string_view run, std::uint64_t index,
                                std::int64_t scheduled_us) {
  std::string id(run);
  id += '-';
  id += std::to_string(index);
  id += '-';
  id += std::to_string(scheduled_us);
  return id;
}

// Finds "task_id":"…" in a callback body and parses its last two fields.
inline std::optional<TaskRef> parse_task_ref(std::string_view body) {
  constexpr std::string_view key = "\"task_id\":\"";
  const auto start = body.find(key);
  if (start == std::string_view::npos) return std::nullopt;
  const auto begin = start + key.size();
  const auto end = body.find('"', begin);
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view id = body.substr(begin, end - begin);
  const auto last = id.rfind('-');
  if (last == std::string_view::npos || last == 0) return std::nullopt;
  const auto middle = id.rfind('-', last - 1);
  if (middle == std::string_view::npos) return std::nullopt;
  try {
    return TaskRef{std::stoull(std::string(id.substr(middle + 1, last - middle - 1))),
                   std::stoll(std::string(id.substr(last + 1)))};
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace callbackd::load
