// The SQLite store's "now", which every due time and lease in the file is measured on: the
// process's monotonic clock, continuing from where the store's clock stood in the last run. A
// step of the wall clock, while callbackd runs or between two runs, moves no due time and ends
// no lease early; only the one process holding the store's lock ever compares against it.
//
// Across runs the clock continues from a reading saved in the settings table (kClockSetting):
// written at open, now and then by transactions that write anyway, and at close.
//  - Same boot (the kernel's boot id, and a steady clock not behind the reading): the steady
//    clock runs on across the gap, so the store's clock continues exactly.
//  - Another boot, or no boot id: the steady clock started over, so the store's clock starts at
//    the wall time, but never below the last reading nor below the latest finish stored: a
//    wall clock that is behind cannot run stored times backwards.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/status.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sqlite_handle.h"

namespace callbackd::sqlite {

// The settings row holding the latest ClockReading.
inline constexpr std::string_view kClockSetting = "store_clock";
// How often, in the store's time, transactions that write anyway also save the reading: what a
// crash followed by a reboot can take back from the clock at most (beside what ran unwritten).
inline constexpr Millis kClockSaveEvery{5000};

// Where the store's clock stood at one moment of one run.
struct ClockReading {
  std::string boot_id;         // the kernel's boot id then; empty when unknown
  std::int64_t steady_ms = 0;  // the steady clock then (ms since its epoch)
  std::int64_t store_ms = 0;   // the store's time then (Unix ms on the store's clock)
  bool operator==(const ClockReading&) const = default;
};

// "boot_id=… steady_ms=… store_ms=…", as kept in the settings table.
std::string encode(const ClockReading& reading);
// nullopt for a value encode() did not write.
std::optional<ClockReading> decode(std::string_view value);

// This machine's boot id (/proc/sys/kernel/random/boot_id), read once; empty when unavailable.
const std::string& this_boot_id();

// The store's time at open. `here` is this run's boot id and steady time, with the wall time as
// store_ms; `saved` the last reading of an earlier run; `latest_finish_ms` the latest finish time
// stored (finished rows keep it in due_at).
std::int64_t store_ms_at_open(const ClockReading& here, const std::optional<ClockReading>& saved,
                              std::optional<std::int64_t> latest_finish_ms);

// The steady clock in whole milliseconds since its epoch, as readings hold it: whole
// milliseconds on both sides of a subtraction, so a saved reading continues its clock exactly.
inline std::int64_t steady_ms(const Clock& clock) {
  return std::chrono::duration_cast<Millis>(clock.steady_now().time_since_epoch()).count();
}

class StoreClock {
 public:
  // Starts at the wall time (no earlier run to continue); open_store_clock() builds the real one.
  explicit StoreClock(std::shared_ptr<const Clock> clock)
      : StoreClock(clock, {{}, steady_ms(*clock), to_unix_ms(clock->now())}) {}
  // Reads at_open.store_ms at at_open.steady_ms and runs on with the steady clock.
  StoreClock(std::shared_ptr<const Clock> clock, ClockReading at_open)
      : clock_(std::move(clock)), at_open_(std::move(at_open)) {}

  TimePoint now() const { return from_unix_ms(now_ms()); }
  std::int64_t now_ms() const { return reading().store_ms; }
  // Where the clock stands now, to be saved.
  ClockReading reading() const {
    const std::int64_t steady = steady_ms(*clock_);
    return {at_open_.boot_id, steady, at_open_.store_ms + (steady - at_open_.steady_ms)};
  }

 private:
  std::shared_ptr<const Clock> clock_;
  ClockReading at_open_;
};

// At open, on the writer before any other use: the clock continuing the saved reading (and the
// latest finish stored), whose reading at open is saved in the same transaction.
Result<StoreClock> open_store_clock(Connection& writer, std::shared_ptr<const Clock> clock,
                                    std::string boot_id);

// Saves where `clock` stands, in the caller's transaction or in one of its own.
Status save_store_clock(Connection& c, const StoreClock& clock);

// Saves it, inside a write transaction, when the last save is kClockSaveEvery old or more;
// `last_saved_ms` is that save's store time (updated here).
Status save_store_clock_now_and_then(Connection& c, const StoreClock& clock,
                                     std::int64_t& last_saved_ms);

}  // namespace callbackd::sqlite
