// Waiting for something another thread or process does, without sleeping longer than needed.
#pragma once

#include <chrono>
#include <thread>

namespace callbackd::testing {

// Polls `condition` every 2 ms until it holds (true) or `timeout` passes (false).
template <class Condition>
bool wait_until(Condition condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace callbackd::testing
