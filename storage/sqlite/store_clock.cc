#include "store_clock.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>

#include "statements.h"

namespace callbackd::sqlite {

namespace {

// The text after `name=` up to the next space (or the end), advancing `rest` past it.
std::optional<std::string_view> field(std::string_view& rest, std::string_view name) {
  if (!rest.starts_with(name) || rest.substr(name.size()).empty() || rest[name.size()] != '=') {
    return std::nullopt;
  }
  rest.remove_prefix(name.size() + 1);
  const std::size_t end = std::min(rest.find(' '), rest.size());
  std::string_view value = rest.substr(0, end);
  rest.remove_prefix(end == rest.size() ? end : end + 1);
  return value;
}

std::optional<std::int64_t> number(std::optional<std::string_view> text) {
  if (!text || text->empty()) return std::nullopt;
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return n;
}

std::string read_boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  if (!(in >> id)) return {};
  return id;
}

Result<std::optional<ClockReading>> saved_reading(Connection& c) {
  auto row = c.prepare(statements::kGetSetting);
  if (!row.ok()) return row.status();
  (*row)->bind(1, kClockSetting);
  const int rc = (*row)->step();
  if (rc == SQLITE_DONE) return std::optional<ClockReading>();
  if (rc != SQLITE_ROW) return c.error("read the store's clock");
  // A value this code did not write (edited by hand) is no reading: the clock then starts no
  // earlier than the wall time and the latest finish.
  return decode((*row)->text(0));
}

Result<std::optional<std::int64_t>> latest_finish(Connection& c) {
  auto row = c.prepare(statements::kLatestFinish);
  if (!row.ok()) return row.status();
  if ((*row)->step() != SQLITE_ROW) return c.error("read the latest finish");
  if ((*row)->is_null(0)) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>((*row)->int64(0));
}

}  // namespace

std::string encode(const ClockReading& reading) {
  return "boot_id=" + reading.boot_id + " steady_ms=" + std::to_string(reading.steady_ms) +
         " store_ms=" + std::to_string(reading.store_ms);
}

std::optional<ClockReading> decode(std::string_view value) {
  std::string_view rest = value;
  const auto boot = field(rest, "boot_id");
  const auto steady = number(field(rest, "steady_ms"));
  const auto store = number(field(rest, "store_ms"));
  if (!boot || !steady || !store || !rest.empty()) return std::nullopt;
  return ClockReading{std::string(*boot), *steady, *store};
}

const std::string& this_boot_id() {
  static const std::string id = read_boot_id();
  return id;
}

std::int64_t store_ms_at_open(const ClockReading& here, const std::optional<ClockReading>& saved,
                              std::optional<std::int64_t> latest_finish_ms) {
  const std::int64_t floor = latest_finish_ms.value_or(std::numeric_limits<std::int64_t>::min());
  if (saved && !saved->boot_id.empty() && saved->boot_id == here.boot_id &&
      here.steady_ms >= saved->steady_ms) {
    // The same steady clock ran on since the reading: continue it. The latest finish is never
    // later in a store this code kept; it only matters for one an older callbackd ran in between.
    return std::max(saved->store_ms + (here.steady_ms - saved->steady_ms), floor);
  }
  return std::max({here.store_ms, floor, saved ? saved->store_ms : floor});
}

Result<StoreClock> open_store_clock(Connection& writer, std::shared_ptr<const Clock> clock,
                                    std::string boot_id) {
  if (Status s = writer.exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  const auto failed = [&](Status s) -> Result<StoreClock> {
    if (writer.in_transaction()) (void)writer.exec("ROLLBACK");
    return s;
  };
  auto saved = saved_reading(writer);
  if (!saved.ok()) return failed(saved.status());
  auto finish = latest_finish(writer);
  if (!finish.ok()) return failed(finish.status());
  // This run as it starts, with the wall time standing in for the store's.
  ClockReading here{std::move(boot_id), steady_ms(*clock), to_unix_ms(clock->now())};
  here.store_ms = store_ms_at_open(here, *saved, *finish);
  StoreClock store_clock(std::move(clock), std::move(here));
  if (Status s = save_store_clock(writer, store_clock); !s.ok()) return failed(s);
  if (Status s = writer.exec("COMMIT"); !s.ok()) return failed(s);
  return store_clock;
}

Status save_store_clock(Connection& c, const StoreClock& clock) {
  auto put = c.prepare(statements::kPutSetting);
  if (!put.ok()) return put.status();
  (*put)->bind(1, kClockSetting).bind_blob(2, encode(clock.reading()));
  return (*put)->run("save the store's clock");
}

Status save_store_clock_now_and_then(Connection& c, const StoreClock& clock,
                                     std::int64_t& last_saved_ms) {
  const std::int64_t now = clock.now_ms();
  if (now - last_saved_ms < kClockSaveEvery.count()) return Status::Ok();
  if (Status s = save_store_clock(c, clock); !s.ok()) return s;
  // Should the transaction roll back after all, this save is lost and the next one comes
  // kClockSaveEvery later: the reading only bounds the next boot's clock from below.
  last_saved_ms = now;
  return Status::Ok();
}

}  // namespace callbackd::sqlite
