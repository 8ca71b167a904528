// The sidecar's HTTP API, independent of the transport: one request in, one response out.
// Routes and shapes are DESIGN.md's table. Errors are {"error":{"code","message"}}.
#pragma once

#include <callbackd/engine.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "metrics.h"

namespace callbackd {

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query: "/v1/callbacks?state=dead"
  std::string authorization;
  std::string body;
};

struct ApiResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

ApiResponse error_response(int status, std::string_view code, std::string_view message);

using Respond = std::function<void(ApiResponse)>;

// Thread-safe. handle() may read the store (run it off the I/O thread) but never waits for a
// commit: an enqueue answers through `respond` once its commit is on disk.
class Api {
 public:
  // `ready` tells /readyz whether the daemon is serving (started, not shutting down).
  Api(Engine& engine, Metrics& metrics, const Config& config, std::function<bool()> ready);

  // Calls `respond` exactly once: before returning, or later from the engine's commit thread.
  void handle(const ApiRequest& request, Respond respond);
  // For the I/O thread, which must never wait: takes a callback POST whose app is in memory
  // (parsed here, answered once committed, as handle() would) and returns true. Returns false,
  // `respond` untouched, for anything that needs handle() off the I/O thread.
  bool handle_without_waiting(const ApiRequest& request, const Respond& respond);

  // The refusal of a request that must not get further than its head (its body unread): a
  // /v1 call without the right bearer token gets its 401 here. Cheap; never reads the store.
  std::optional<ApiResponse> check_head(const ApiRequest& head);

 private:
  // The response, or nullopt when `respond` will be called later.
  std::optional<ApiResponse> route(const ApiRequest& request, const Respond& respond);
  ApiResponse create_app(const ApiRequest& request);
  ApiResponse rotate_secret(const std::string& app_id);
  ApiResponse list_apps(const std::string& query);
  ApiResponse stats();
  // False (nothing answered) when `may_wait` is false and taking it would read the store.
  bool enqueue(const ApiRequest& request, const Respond& respond, bool may_wait = true);
  Respond counted(Respond respond);
  ApiResponse get_delivery(const std::string& delivery_id);
  ApiResponse list_deliveries(const std::string& query);
  ApiResponse redeliver(const std::string& delivery_id);
  ApiResponse list_endpoints(const std::string& query);
  ApiResponse redeliver_matching(const ApiRequest& request);
  ApiResponse openapi_document();
  bool authorized(const ApiRequest& request) const;

  Engine& engine_;
  Metrics& metrics_;
  const Config& config_;
  std::function<bool()> ready_;
};

}  // namespace callbackd
