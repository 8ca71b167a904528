#include "json_views.h"

#include <chrono>
#include <cstdio>

namespace callbackd {

std::string rfc3339(TimePoint time) {
  const auto days = std::chrono::floor<std::chrono::days>(time);
  const std::chrono::year_month_day date(days);
  const std::chrono::hh_mm_ss clock(time - days);
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", int(date.year()),
                unsigned(date.month()), unsigned(date.day()), int(clock.hours().count()),
                int(clock.minutes().count()), int(clock.seconds().count()),
                int(clock.subseconds().count()));
  return text;
}

std::optional<TimePoint> parse_rfc3339(std::string_view text) {
  std::size_t at = 0;
  // Reads exactly `digits` decimal digits.
  auto number = [&](std::size_t digits) -> std::optional<int> {
    if (at + digits > text.size()) return std::nullopt;
    int value = 0;
    for (std::size_t i = 0; i < digits; ++i) {
      const char c = text[at + i];
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + (c - '0');
    }
    at += digits;
    return value;
  };
  auto expect = [&](char c) {
    if (at >= text.size() || (text[at] != c && !(c == 'T' && text[at] == 't'))) return false;
    ++at;
    return true;
  };
  const auto year = number(4);
  if (!year || !expect('-')) return std::nullopt;
  const auto month = number(2);
  if (!month || !expect('-')) return std::nullopt;
  const auto day = number(2);
  if (!day || !expect('T')) return std::nullopt;
  const auto hour = number(2);
  if (!hour || !expect(':')) return std::nullopt;
  const auto minute = number(2);
  if (!minute || !expect(':')) return std::nullopt;
  const auto second = number(2);
  if (!second) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(*year),
                                         std::chrono::month(static_cast<unsigned>(*month)),
                                         std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok() || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  int millis = 0;
  if (at < text.size() && text[at] == '.') {
    ++at;
    std::size_t digits = 0;
    for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++digits) {
      if (digits < 3) millis = millis * 10 + (text[at] - '0');
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 3; ++digits) millis *= 10;
  }
  int offset_minutes = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z')) {
    ++at;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    const int sign = text[at++] == '-' ? -1 : 1;
    const auto hours = number(2);
    if (!hours || !expect(':')) return std::nullopt;
    const auto minutes = number(2);
    if (!minutes || *hours > 23 || *minutes > 59) return std::nullopt;
    offset_minutes = sign * (*hours * 60 + *minutes);
  } else {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;
  const auto local = std::chrono::sys_days(date) + std::chrono::hours(*hour) +
                     std::chrono::minutes(*minute) + std::chrono::seconds(*second) +
                     std::chrono::milliseconds(millis);
  return std::chrono::time_point_cast<Millis>(local - std::chrono::minutes(offset_minutes));
}

nlohmann::ordered_json delivery_json(const Delivery& delivery) {
  nlohmann::ordered_json attempts = nlohmann::ordered_json::array();
  for (const Attempt& a : delivery.attempts) {
    nlohmann::ordered_json attempt;
    attempt["n"] = a.number;
    attempt["started_at"] = rfc3339(a.started_at);
    attempt["duration_ms"] = a.duration.count();
    attempt["http_status"] =
        a.http_status == 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(a.http_status);
    attempt["error"] = a.error == AttemptError::kNone ? nlohmann::ordered_json()
                                                      : nlohmann::ordered_json(to_string(a.error));
    if (!a.error_detail.empty()) attempt["error_detail"] = a.error_detail;
    attempt["response_head"] = a.response_head;  // dump with error_handler_t::replace
    attempts.push_back(std::move(attempt));
  }
  nlohmann::ordered_json out;
  out["delivery_id"] = delivery.id;
  out["app_id"] = delivery.app_id;
  out["task_id"] = delivery.task_id;
  out["callback_url"] = delivery.callback_url;
  out["state"] = to_string(delivery.state);
  out["attempts"] = std::move(attempts);
  out["next_attempt_at"] = delivery.next_attempt_at
                               ? nlohmann::ordered_json(rfc3339(*delivery.next_attempt_at))
                               : nlohmann::ordered_json();
  out["created_at"] = rfc3339(delivery.created_at);
  return out;
}

nlohmann::ordered_json endpoint_json(const EndpointHealth& e, std::size_t waiting) {
  const auto time_or_null = [](const std::optional<TimePoint>& t) {
    return t ? nlohmann::ordered_json(rfc3339(*t)) : nlohmann::ordered_json();
  };
  nlohmann::ordered_json out;
  out["endpoint"] = e.endpoint;
  out["state"] = to_string(e.state);
  out["attempts"] = e.attempts;
  out["failures"] = e.failures;
  out["failure_rate"] = e.failure_rate;
  out["success_rate"] =
      e.attempts == 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(1.0 - e.failure_rate);
  out["last_error"] =
      e.last_error ? nlohmann::ordered_json(to_string(*e.last_error)) : nlohmann::ordered_json();
  out["last_failure_at"] = time_or_null(e.last_failure_at);
  out["opened_at"] = time_or_null(e.opened_at);
  out["next_probe_at"] = time_or_null(e.next_probe_at);
  out["in_flight"] = e.in_flight;
  out["waiting"] = waiting;
  return out;
}

std::string error_json(std::string_view code, std::string_view message) {
  nlohmann::ordered_json body;
  body["error"]["code"] = code;
  body["error"]["message"] = message;
  // Messages can echo untrusted input: replace invalid UTF-8 rather than fail.
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace callbackd
