// Moving an endpoint's backlog later in the store, so claims stop walking past rows that could
// not be sent now anyway (an open endpoint's, or a slow full host's beyond what its line takes
// next). Only ever later, never an attempt spent.
#pragma once

#include <callbackd/clock.h>

#include <optional>
#include <string>
#include <unordered_map>

namespace callbackd {

// An endpoint's pending rows due before `until` move to `until`, but for the `keep_oldest`
// oldest due (what its line takes next).
struct BacklogDeferral {
  std::string host;
  SteadyTime until{};
  std::size_t keep_oldest = 0;
  // A slow host's backlog: a move that is still ahead stands rather than being pushed on.
  bool keep_later_move = false;
  bool announce = false;  // an endpoint that just opened: say in an info line what moved
};

// Which backlogs were moved, to when and when: callbacks keep arriving for a skipped host, so
// its move is repeated, to the same time, at most once per interval (only the new rows move).
// Not thread-safe.
class BacklogMoves {
 public:
  static constexpr Millis kInterval{1000};

  // The move to make now for `wanted`, or none when one was made a moment ago.
  std::optional<BacklogDeferral> next(BacklogDeferral wanted, SteadyTime now) {
    auto [it, fresh] = moves_.try_emplace(wanted.host);
    if (!fresh && now - it->second.moved_at < kInterval) return std::nullopt;
    if (wanted.keep_later_move && !fresh && now < it->second.until) wanted.until = it->second.until;
    it->second = Move{wanted.until, now};
    return wanted;
  }
  // Forgets moves whose time has passed.
  void forget_past(SteadyTime now) {
    std::erase_if(moves_, [&](const auto& move) { return move.second.until < now; });
  }

 private:
  struct Move {
    SteadyTime until{};
    SteadyTime moved_at{};
  };
  std::unordered_map<std::string, Move> moves_;
};

}  // namespace callbackd
