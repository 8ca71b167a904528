#include "dispatch/attempt.h"

#include <cassert>

namespace callbackd::dispatch {

HttpRequest Attempt::start(Signer& signer, TimePoint wall_now, SteadyTime now, Millis timeout,
                           bool probe) {
  assert(stage_ == Stage::kWaiting);
  stage_ = Stage::kSending;
  probe_ = probe;
  started_at_ = wall_now;
  started_ = now;
  HttpRequest request;
  request.url = delivery_.callback_url;
  request.body = delivery_.body;
  request.timeout = timeout;
  request.headers.reserve(4);
  request.headers.push_back("X-Callback-Id: " + delivery_.id);
  request.headers.push_back("X-Callback-Attempt: " + std::to_string(number()));
  signer.add_headers(delivery_.id, wall_now, *delivery_.body, request.headers);
  return request;
}

AttemptRecord Attempt::finish(HttpResponse response, const NextStep& next) {
  assert(stage_ == Stage::kSending);
  stage_ = Stage::kRecording;
  AttemptRecord record;
  record.lease = lease_.token();
  record.attempt.number = number();
  record.attempt.started_at = started_at_;
  record.attempt.duration = response.duration;
  record.attempt.http_status = response.http_status;
  record.attempt.error = response.error;
  record.attempt.error_detail = std::move(response.error_detail);
  record.attempt.response_head = std::move(response.body_head);
  record.next_state = next.state;
  record.retry_after = next.retry_after;
  return record;
}

}  // namespace callbackd::dispatch
