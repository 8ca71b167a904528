#include "api.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "console_files.h"
#include "embedded_files.h"
#include "ingest.h"
#include "json_shape.h"
#include "json_views.h"
#include "redeliver_request.h"
#include "units.h"

namespace callbackd {

std::span<const EmbeddedFile> openapi_files();  // generated: service/CMakeLists.txt

namespace {

using nlohmann::ordered_json;

constexpr auto kReplaceInvalidUtf8 = ordered_json::error_handler_t::replace;

ApiResponse json_response(int status, const ordered_json& body) {
  return ApiResponse{
      status, body.dump(-1, ' ', false, kReplaceInvalidUtf8), "application/json", {}};
}

// Nothing was stored; the caller should come back once the operator has made room.
ApiResponse storage_unavailable(const Status& status) {
  ApiResponse r = error_response(503, "storage_unavailable", status.message());
  r.headers.emplace_back("Retry-After", "10");
  return r;
}

// The HTTP form of an engine Status. `not_found_code` says what was not found.
ApiResponse from_status(const Status& status, std::string_view not_found_code) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      return error_response(400, "invalid_field", status.message());
    case StatusCode::kNotFound:
      return error_response(404, not_found_code, status.message());
    case StatusCode::kFailedPrecondition:
      return error_response(409, "invalid_state", status.message());
    case StatusCode::kPermissionDenied:
      return error_response(422, "blocked_url", status.message());
    case StatusCode::kResourceExhausted:
      return error_response(429, "quota_exceeded", status.message());
    case StatusCode::kUnavailable:
      return error_response(503, "unavailable", status.message());
    case StatusCode::kStorageUnavailable:
      return storage_unavailable(status);
    case StatusCode::kOk:
    case StatusCode::kInternal:
      break;
  }
  spdlog::error("event=api_internal_error error=\"{}\"", status.to_string());
  return error_response(500, "internal", "internal error; see the daemon's log");
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> segments;
  std::size_t start = 1;  // skip the leading '/'
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    segments.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return segments;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// key=value pairs of a query string, each value percent-decoded (nullopt when it cannot be).
std::vector<std::pair<std::string, std::optional<std::string>>> query_pairs(
    std::string_view query) {
  std::vector<std::pair<std::string, std::optional<std::string>>> pairs;
  std::size_t start = 0;
  while (start < query.size()) {
    std::size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const std::size_t equals = pair.find('=');
    pairs.emplace_back(
        std::string(pair.substr(0, equals)),
        percent_decode(equals == std::string_view::npos ? "" : pair.substr(equals + 1)));
  }
  return pairs;
}

// A page size from a query string: 1 to 1000.
std::optional<std::size_t> parse_page_limit(std::string_view text) {
  std::optional<std::uint64_t> limit = parse_unsigned(text);
  if (!limit || *limit < 1 || *limit > 1000) return std::nullopt;
  return static_cast<std::size_t>(*limit);
}

ApiResponse bad_page_limit() {
  return error_response(400, "invalid_field", "limit: must be a number from 1 to 1000");
}

}  // namespace

ApiResponse error_response(int status, std::string_view code, std::string_view message) {
  return ApiResponse{status, error_json(code, message), "application/json", {}};
}

Api::Api(Engine& engine, Metrics& metrics, const Config& config, std::function<bool()> ready)
    : engine_(engine), metrics_(metrics), config_(config), ready_(std::move(ready)) {}

Respond Api::counted(Respond respond) {
  return [this, respond = std::move(respond)](ApiResponse response) {
    metrics_.on_http_response(response.status);
    respond(std::move(response));
  };
}

void Api::handle(const ApiRequest& request, Respond respond) {
  Respond answer = counted(std::move(respond));
  if (std::optional<ApiResponse> response = route(request, answer)) answer(std::move(*response));
}

bool Api::handle_without_waiting(const ApiRequest& request, const Respond& respond) {
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  // Only the enqueue route; its bearer token was checked with the head already, and is again.
  if (request.method != "POST" || path != "/v1/callbacks" || !authorized(request)) return false;
  return enqueue(request, counted(respond), /*may_wait=*/false);
}

namespace {

// Every /v1 route needs the token; a path outside /v1 is a 404 whoever asks.
bool needs_token(std::string_view path) { return path.rfind("/v1/", 0) == 0; }

ApiResponse unauthorized() {
  ApiResponse r =
      error_response(401, "unauthorized", "missing or wrong Authorization: Bearer <api_token>");
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

}  // namespace

std::optional<ApiResponse> Api::check_head(const ApiRequest& head) {
  const std::string_view path = std::string_view(head.target).substr(0, head.target.find('?'));
  if (!needs_token(path) || authorized(head)) return std::nullopt;
  metrics_.on_http_response(401);
  return unauthorized();
}

bool Api::authorized(const ApiRequest& request) const {
  if (config_.api_token.empty()) return true;
  const std::string expected = "Bearer " + config_.api_token;
  // Constant time: the comparison must not tell how much of a guessed token was right.
  return request.authorization.size() == expected.size() &&
         CRYPTO_memcmp(request.authorization.data(), expected.data(), expected.size()) == 0;
}

std::optional<ApiResponse> Api::route(const ApiRequest& request, const Respond& respond) {
  const std::size_t question = request.target.find('?');
  const std::string path = request.target.substr(0, question);
  const std::string query =
      question == std::string::npos ? "" : request.target.substr(question + 1);
  const std::vector<std::string> s = split_path(path);
  const std::string& m = request.method;

  // Each route: does the path match, which methods it takes, and the handler per method.
  auto allow = [&](std::initializer_list<const char*> methods) -> std::optional<ApiResponse> {
    for (const char* method : methods) {
      if (m == method) return std::nullopt;
    }
    std::string allowed;
    for (const char* method : methods)
      allowed += (allowed.empty() ? "" : ", ") + std::string(method);
    ApiResponse r = error_response(405, "method_not_allowed",
                                   m + " is not allowed on " + path + "; use " + allowed);
    r.headers.emplace_back("Allow", allowed);
    return r;
  };

  // HEAD answers as GET does; the server leaves the body out.
  if (path == "/healthz") {
    if (auto r = allow({"GET", "HEAD"})) return *r;
    return json_response(200, {{"status", "ok"}});
  }
  if (path == "/readyz") {
    if (auto r = allow({"GET", "HEAD"})) return *r;
    if (!ready_()) return error_response(503, "not_ready", "starting or shutting down");
    if (Status s = engine_.check_storage(); !s.ok()) return from_status(s, "not_found");
    return json_response(200, {{"status", "ready"}});
  }
  if (path == "/metrics") {
    if (auto r = allow({"GET"})) return *r;
    return ApiResponse{
        200, metrics_.render(engine_), "text/plain; version=0.0.4; charset=utf-8", {}};
  }
  if (auto r = console_response(m, path)) return *r;
  if (s.size() < 2 || s[0] != "v1") {
    return error_response(404, "not_found", "no route for " + path);
  }
  if (!authorized(request)) return unauthorized();

  if (s.size() == 2 && s[1] == "openapi.json") {
    if (auto r = allow({"GET"})) return *r;
    return openapi_document();
  }

  if (s[1] == "apps") {
    if (s.size() == 2) {
      if (auto r = allow({"GET", "POST"})) return *r;
      if (m == "GET") return list_apps(query);
      return create_app(request);
    }
    if (s.size() == 4 && !s[2].empty() && s[3] == "rotate-secret") {
      if (auto r = allow({"POST"})) return *r;
      return rotate_secret(s[2]);
    }
  } else if (s[1] == "stats" && s.size() == 2) {
    if (auto r = allow({"GET"})) return *r;
    return stats();
  } else if (s[1] == "callbacks") {
    if (s.size() == 2) {
      if (auto r = allow({"GET", "POST"})) return *r;
      if (m == "GET") return list_deliveries(query);
      enqueue(request, respond);
      return std::nullopt;
    }
    // Before /v1/callbacks/{id}: "redeliver" is never a delivery id (those start "dlv_").
    if (s.size() == 3 && s[2] == "redeliver") {
      if (auto r = allow({"POST"})) return *r;
      return redeliver_matching(request);
    }
    if (s.size() == 3 && !s[2].empty()) {
      if (auto r = allow({"GET"})) return *r;
      return get_delivery(s[2]);
    }
    if (s.size() == 4 && !s[2].empty() && s[3] == "redeliver") {
      if (auto r = allow({"POST"})) return *r;
      return redeliver(s[2]);
    }
  }
  if (s[1] == "endpoints" && s.size() == 2) {
    if (auto r = allow({"GET"})) return *r;
    return list_endpoints(query);
  }
  return error_response(404, "not_found", "no route for " + path);
}

ApiResponse Api::create_app(const ApiRequest& request) {
  if (std::optional<JsonProblem> problem = check_json_shape(request.body)) {
    const bool names_a_field = problem->kind == JsonProblemKind::kDuplicateKey;
    return error_response(400, names_a_field ? "invalid_field" : "malformed_json",
                          problem->message);
  }
  ordered_json body = ordered_json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return error_response(400, "malformed_json", "body: must be a JSON object");
  }
  for (const auto& [key, value] : body.items()) {
    if (key != "name" && key != "signature_scheme") {
      return error_response(400, "invalid_field", key + ": unknown field");
    }
  }
  auto name = body.find("name");
  if (name == body.end()) return error_response(400, "invalid_field", "name: required");
  if (!name->is_string()) return error_response(400, "invalid_field", "name: must be a string");
  SignatureScheme scheme = SignatureScheme::kHex;
  if (auto it = body.find("signature_scheme"); it != body.end()) {
    std::optional<SignatureScheme> parsed =
        it->is_string() ? parse_signature_scheme(it->get<std::string>()) : std::nullopt;
    if (!parsed) {
      return error_response(400, "invalid_field",
                            "signature_scheme: must be \"hex\" or \"standard\"");
    }
    scheme = *parsed;
  }
  Result<AppWithSecret> app = engine_.create_app(name->get<std::string>(), scheme);
  if (!app.ok()) return from_status(app.status(), "not_found");
  return json_response(201, {{"app_id", app->app.id},
                             {"name", app->app.name},
                             {"signing_secret", app->signing_secret},
                             {"signature_scheme", to_string(app->app.scheme)}});
}

ApiResponse Api::list_apps(const std::string& query) {
  std::size_t limit = 100;
  std::string cursor;
  for (const auto& [key, value] : query_pairs(query)) {
    if (!value) return error_response(400, "invalid_field", key + ": bad percent-encoding");
    if (key == "limit") {
      std::optional<std::size_t> n = parse_page_limit(*value);
      if (!n) return bad_page_limit();
      limit = *n;
    } else if (key == "cursor") {
      cursor = *value;
    } else {
      return error_response(400, "invalid_field", key + ": unknown query parameter");
    }
  }
  Result<AppPage> page = engine_.list_apps(limit, cursor);
  if (!page.ok()) return from_status(page.status(), "not_found");
  ordered_json items = ordered_json::array();
  for (const App& app : page->items) {
    items.push_back({{"app_id", app.id},
                     {"name", app.name},
                     {"signature_scheme", to_string(app.scheme)},
                     {"created_at", rfc3339(app.created_at)}});
  }
  return json_response(
      200, {{"items", std::move(items)},
            {"next_cursor",
             page->next_cursor.empty() ? ordered_json() : ordered_json(page->next_cursor)}});
}

ApiResponse Api::stats() {
  // The console polls this: the counts are at most a second old.
  Result<DeliveryCounts> counts = engine_.count_by_state(Millis(1000));
  if (!counts.ok()) return from_status(counts.status(), "not_found");
  ordered_json deliveries;
  for (DeliveryState state : {DeliveryState::kPending, DeliveryState::kInFlight,
                              DeliveryState::kDelivered, DeliveryState::kDead}) {
    deliveries[std::string(to_string(state))] = (*counts)[static_cast<std::size_t>(state)];
  }
  ordered_json minutes = ordered_json::array();
  std::size_t succeeded = 0, attempts = 0;
  for (const MinuteCounts& m : engine_.attempts_last_hour()) {
    minutes.push_back({{"minute", rfc3339(m.minute)},
                       {"attempts", m.attempts()},
                       {"succeeded", m.succeeded},
                       {"failed", m.failed}});
    succeeded += m.succeeded;
    attempts += m.attempts();
  }
  return json_response(
      200, {{"deliveries", std::move(deliveries)},
            {"attempts_per_minute", std::move(minutes)},
            {"success_rate",
             attempts == 0 ? ordered_json() : ordered_json(double(succeeded) / double(attempts))}});
}

ApiResponse Api::rotate_secret(const std::string& app_id) {
  Result<AppWithSecret> app = engine_.rotate_secret(app_id);
  if (!app.ok()) return from_status(app.status(), "app_not_found");
  return json_response(200, {{"app_id", app->app.id}, {"signing_secret", app->signing_secret}});
}

bool Api::enqueue(const ApiRequest& request, const Respond& respond, bool may_wait) {
  auto parsed = parse_callback_request(request.body);
  if (auto* problem = std::get_if<IngestProblem>(&parsed)) {
    switch (problem->kind) {
      case IngestError::kMalformedJson:
        respond(error_response(400, "malformed_json", problem->message));
        break;
      case IngestError::kUnsupportedEndpoint:
        respond(error_response(422, "unsupported_endpoint", problem->message));
        break;
      case IngestError::kInvalidField:
        respond(error_response(400, "invalid_field", problem->message));
        break;
    }
    return true;
  }
  const CallbackRequest& callback = std::get<CallbackRequest>(parsed);
  // 202 only once the commit is on disk; this thread is free meanwhile.
  auto answer = [respond](Result<EnqueueReceipt> receipt) {
    if (!receipt.ok()) return respond(from_status(receipt.status(), "app_not_found"));
    // Written directly (the hot path's one JSON answer): ids and state names never need escaping.
    respond(ApiResponse{receipt->created ? 202 : 200,
                        "{\"delivery_id\":\"" + receipt->delivery_id + "\",\"state\":\"" +
                            std::string(to_string(receipt->state)) + "\"}",
                        "application/json",
                        {}});
  };
  if (!may_wait) {
    return engine_.try_enqueue_async(callback.app_id, callback.callback_url, callback.task,
                                     std::move(answer));
  }
  engine_.enqueue_async(callback.app_id, callback.callback_url, callback.task, std::move(answer));
  return true;
}

ApiResponse Api::get_delivery(const std::string& delivery_id) {
  Result<Delivery> delivery = engine_.delivery(delivery_id);
  if (!delivery.ok()) return from_status(delivery.status(), "delivery_not_found");
  return json_response(200, delivery_json(*delivery));
}

ApiResponse Api::list_deliveries(const std::string& query) {
  DeliveryFilter filter;
  for (const auto& [key, value] : query_pairs(query)) {
    if (!value) return error_response(400, "invalid_field", key + ": bad percent-encoding");
    if (key == "state") {
      filter.state = parse_delivery_state(*value);
      if (!filter.state) {
        return error_response(400, "invalid_field",
                              "state: must be pending, in_flight, delivered or dead");
      }
    } else if (key == "app_id") {
      filter.app_id = *value;
    } else if (key == "task_id") {
      filter.task_id = *value;
    } else if (key == "limit") {
      std::optional<std::size_t> limit = parse_page_limit(*value);
      if (!limit) return bad_page_limit();
      filter.limit = *limit;
    } else if (key == "cursor") {
      filter.cursor = *value;
    } else {
      return error_response(400, "invalid_field", key + ": unknown query parameter");
    }
  }
  Result<DeliveryPage> page = engine_.list(filter);
  if (!page.ok()) return from_status(page.status(), "not_found");
  ordered_json items = ordered_json::array();
  for (const Delivery& d : page->items) items.push_back(delivery_json(d));
  return json_response(
      200, {{"items", std::move(items)},
            {"next_cursor",
             page->next_cursor.empty() ? ordered_json() : ordered_json(page->next_cursor)}});
}

ApiResponse Api::redeliver(const std::string& delivery_id) {
  Result<Delivery> delivery = engine_.redeliver(delivery_id);
  if (!delivery.ok()) return from_status(delivery.status(), "delivery_not_found");
  return json_response(200, delivery_json(*delivery));
}

ApiResponse Api::list_endpoints(const std::string& query) {
  EndpointQuery filter;
  for (const auto& [key, value] : query_pairs(query)) {
    if (!value) return error_response(400, "invalid_field", key + ": bad percent-encoding");
    if (key == "state") {
      filter.state = parse_breaker_state(*value);
      if (!filter.state) {
        return error_response(400, "invalid_field", "state: must be open, half_open or closed");
      }
    } else if (key == "limit") {
      std::optional<std::size_t> limit = parse_page_limit(*value);
      if (!limit) return bad_page_limit();
      filter.limit = *limit;
    } else {
      return error_response(400, "invalid_field", key + ": unknown query parameter");
    }
  }
  ordered_json items = ordered_json::array();
  for (const EndpointHealth& e : engine_.endpoints(filter)) {
    // A page of up to 1000 endpoints: each count at most a second old.
    Result<std::size_t> waiting = engine_.pending_for_endpoint(e.endpoint, Millis(1000));
    if (!waiting.ok()) return from_status(waiting.status(), "not_found");
    items.push_back(endpoint_json(e, *waiting));
  }
  return json_response(200, {{"items", std::move(items)}});
}

ApiResponse Api::redeliver_matching(const ApiRequest& request) {
  auto parsed = parse_redeliver_request(request.body, engine_.now());
  if (auto* problem = std::get_if<RequestProblem>(&parsed)) {
    return error_response(400, problem->code, problem->message);
  }
  const RedeliverFilter& filter = std::get<RedeliverFilter>(parsed);
  Result<RedeliverBatch> batch = engine_.redeliver_matching(filter);
  if (!batch.ok()) return from_status(batch.status(), "app_not_found");
  return json_response(
      200, {{"queued", batch->app_ids.size()},
            {"next_cursor",
             batch->next_cursor.empty() ? ordered_json() : ordered_json(batch->next_cursor)}});
}

ApiResponse Api::openapi_document() {
  const EmbeddedFile* document = find_embedded_file(openapi_files(), "openapi.json");
  return ApiResponse{200, std::string(document->bytes()), "application/json", {}};
}

}  // namespace callbackd
