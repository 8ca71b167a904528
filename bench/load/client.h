// The load tool's sending side: N keep-alive connections posting unique tasks to
// POST /v1/callbacks on an open-loop schedule (send i is due at start + i / rate, and its
// latency counts from then, so a slow server cannot hide its stalls), or flat out.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "histogram.h"
#include "task_id.h"

namespace callbackd::load {

struct ClientOptions {
  std::string host;
  std::string port;
  std::string token;
  std::array<std::string, kKinds> app_ids;        // each kind of customer is an app of its own
  std::string run;                                // task id prefix, unique per run
  std::array<std::string, kKinds> urls;           // callback_url for each kind
  std::array<int, kKinds> percent{100, 0, 0, 0};  // share of each kind (good gets the rest)
  int failed_percent = 10;                        // tasks posted as "failed" instead of "completed"
  int connections = 64;
  double rate = 0;          // sends per second; 0 = flat out
  std::uint64_t count = 0;  // sends in all; 0 = until duration
  double duration = 10;     // seconds (used when count is 0)
  double timeout = 10;      // seconds per request
};

struct ClientCounts {
  std::uint64_t sent = 0;
  std::uint64_t accepted = 0;  // 202 (and 200: task already stored)
  std::uint64_t in_flight = 0;
  std::map<std::string, std::uint64_t> errors;  // "http_503", "timeout", "connect", …
  std::int64_t last_accept_us = 0;
  bool done = false;
};

Kind kind_of(std::uint64_t index, const std::array<int, kKinds>& percent);

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start(std::int64_t start_us);  // runs on its own thread until every send has an answer
  void join();
  ClientCounts counts() const;
  Histogram take_recent();                     // accept latencies since the previous call
  std::vector<std::uint8_t> accepted() const;  // by index; after join()

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd::load
