// Runs an engine in its own process for the crash test: enqueues tasks one by one and prints
// each delivery id once enqueue has returned (the callback is accepted), then keeps
// delivering until it is killed.
//   callbackd_crash_child <database> <app_id> <callback_url> <count> <attempt_timeout_ms>
#include <callbackd/engine.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "sqlite_engine.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s DB APP_ID URL COUNT TIMEOUT_MS\n", argv[0]);
    return 2;
  }
  callbackd::EngineOptions options;
  options.attempt_timeout = std::chrono::milliseconds(std::stoi(argv[5]));
  options.retry_schedule = {std::chrono::milliseconds(50), std::chrono::milliseconds(50)};
  options.poll_interval = std::chrono::milliseconds(20);
  options.allow_networks = {"127.0.0.0/8"};
  auto engine = callbackd::testing::open_sqlite_engine(argv[1], options);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.status().to_string().c_str());
    return 1;
  }
  (*engine)->start();
  const int count = std::stoi(argv[4]);
  for (int i = 0; i < count; ++i) {
    callbackd::TaskResult task;
    task.task_id = "crash-" + std::to_string(i);
    task.status = callbackd::TaskStatus::kFailed;
    task.error = "e";
    auto receipt = (*engine)->enqueue(argv[2], argv[3], task);
    if (!receipt.ok()) {
      std::fprintf(stderr, "%s\n", receipt.status().to_string().c_str());
      return 1;
    }
    std::printf("%s\n", receipt->delivery_id.c_str());
    std::fflush(stdout);
  }
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}
