// Errors as values: every fallible call in callbackd returns a Status or a Result<T>.
// A message names the field, path or id a person has to act on.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace callbackd {

enum class StatusCode {
  kOk,
  kInvalidArgument,     // bad input: a field is missing, malformed or out of range
  kNotFound,            // an app or delivery id that does not exist
  kFailedPrecondition,  // valid request, wrong state (e.g. redeliver a pending delivery)
  kPermissionDenied,    // refused by policy (e.g. a callback URL in a blocked network)
  kResourceExhausted,   // a quota or cap was reached
  kUnavailable,         // the engine is stopping or storage cannot be reached
  kStorageUnavailable,  // the store cannot write (disk full, I/O error): retry once it can
  kInternal,            // a bug or an unexpected storage failure
};

// Stable lower-case name of a code ("invalid_argument", ...), used in logs and the HTTP API.
constexpr std::string_view to_string(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case StatusCode::kPermissionDenied:
      return "permission_denied";
    case StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kStorageUnavailable:
      return "storage_unavailable";
    case StatusCode::kInternal:
      return "internal";
  }
  return "unknown";
}

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status StorageUnavailable(std::string m) {
    return {StatusCode::kStorageUnavailable, std::move(m)};
  }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "invalid_argument: callback_url: scheme must be http or https"
  std::string to_string() const {
    if (ok()) return "ok";
    return std::string(callbackd::to_string(code_)) + ": " + message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status saying why there is none. REQUIRES: a Result is built from a non-ok
// Status only.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Status error) : value_(std::move(error)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(value_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(value_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(value_);
  }

  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> value_;
};

}  // namespace callbackd
