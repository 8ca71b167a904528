// What both backends read back the same way: a listing's cursor, and a delivery and an attempt
// from a row of their SELECTs, whose columns come in the same order in both (see each backend's
// statements). A Row is anything with text(column), int64(column) and bytes(column).
#pragma once

#include <callbackd/delivery.h>

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>

namespace callbackd {

// A listing's cursor is the seq of the last delivery shown: a number, or nothing (malformed).
inline std::optional<std::int64_t> parse_seq_cursor(const std::string& cursor) {
  std::int64_t seq = 0;
  auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), seq);
  if (ec != std::errc() || end != cursor.data() + cursor.size() || seq < 0) return std::nullopt;
  return seq;
}

// seq, id, app_id, task_id, callback_url, state, due_at, created_at: a delivery without its
// attempts (due_at is its next attempt's time while it is pending).
template <class Row>
Delivery delivery_from_row(const Row& row) {
  Delivery d;
  d.id = row.text(1);
  d.app_id = row.text(2);
  d.task_id = row.text(3);
  d.callback_url = row.text(4);
  d.state = static_cast<DeliveryState>(row.int64(5));
  if (d.state == DeliveryState::kPending) d.next_attempt_at = from_unix_ms(row.int64(6));
  d.created_at = from_unix_ms(row.int64(7));
  return d;
}

// n, started_at, duration_ms, http_status, error, error_detail, response_head.
template <class Row>
Attempt attempt_from_row(const Row& row) {
  Attempt a;
  a.number = static_cast<int>(row.int64(0));
  a.started_at = from_unix_ms(row.int64(1));
  a.duration = Millis(row.int64(2));
  a.http_status = static_cast<int>(row.int64(3));
  a.error = parse_attempt_error(row.text(4)).value_or(AttemptError::kNetwork);
  a.error_detail = row.text(5);
  a.response_head = row.bytes(6);
  return a;
}

}  // namespace callbackd
