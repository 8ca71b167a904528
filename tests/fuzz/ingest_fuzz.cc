// libFuzzer: POST /v1/callbacks bodies. Any bytes must give a request or a named problem, an
// accepted request must serialize to a body that parses back to the same task, and what the
// fast path takes the full parse takes alike.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "ingest.h"
#include "plain_callback_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // The fast path never takes a body the full parse would read otherwise.
  if (auto plain = callbackd::parse_plain_callback_request(input)) {
    auto full = callbackd::parse_callback_request_fully(input);
    auto* request = std::get_if<callbackd::CallbackRequest>(&full);
    if (request == nullptr) std::abort();
    auto fast_body = callbackd::build_callback_body(plain->task);
    auto full_body = callbackd::build_callback_body(request->task);
    if (plain->app_id != request->app_id || plain->callback_url != request->callback_url ||
        plain->endpoint != request->endpoint || fast_body.ok() != full_body.ok() ||
        (fast_body.ok() && *fast_body != *full_body)) {
      std::abort();
    }
  }
  auto parsed = callbackd::parse_callback_request(input);
  if (auto* problem = std::get_if<callbackd::IngestProblem>(&parsed)) {
    if (problem->message.empty()) std::abort();  // every refusal names its field
    return 0;
  }
  const auto& request = std::get<callbackd::CallbackRequest>(parsed);
  callbackd::Result<std::string> body = callbackd::build_callback_body(request.task);
  if (!body.ok()) return 0;  // e.g. an empty task_id: refused by the engine, with a message
  const auto round_trip = nlohmann::json::parse(*body, nullptr, false);
  if (round_trip.is_discarded() || round_trip["task_id"] != request.task.task_id) std::abort();
  return 0;
}
