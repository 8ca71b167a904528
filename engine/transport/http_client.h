// Outbound HTTP for attempts: libcurl multi driven by a Boost.Asio io_context through the
// multi_socket API (no polling loop, no thread per request). One attempt = one POST.
//
// Not thread-safe: construct, post() and destroy on the io_context's thread; completion
// handlers run there too.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/delivery.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace callbackd {

struct HttpClientOptions {
  std::size_t max_response_bytes = 1024;  // response body bytes kept; reading stops past it
  std::size_t connection_cache_size = 256;
  std::string user_agent = "callbackd";
  // Asked with the address curl is about to connect to (after DNS, before connect), so a name
  // that resolves or rebinds to a forbidden address is still refused. Returning false fails
  // the attempt with AttemptError::kBlocked. Empty: every address is allowed.
  std::function<bool(const boost::asio::ip::address&)> allow_address;
  // PEM bundle of trusted CAs; empty: the system's default store. Certificates are verified.
  std::string ca_bundle_path;
  // Fixed answers for name lookups, in curl's CURLOPT_RESOLVE form "host:port:addr[,addr]",
  // so tests can give a name several addresses without a DNS server.
  std::vector<std::string> resolve;
};

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;         // "Name: value"; Content-Type is added
  std::shared_ptr<const std::string> body;  // kept alive until the handler has run; not copied
  Millis timeout{10000};                    // whole attempt: DNS, connect, TLS, send, response
};

struct HttpResponse {
  int http_status = 0;  // 0 when no status line arrived
  // kNone only for a 2xx received within the timeout; kStatus for any other status; the
  // transport error kind otherwise.
  AttemptError error = AttemptError::kNone;
  std::string error_detail;  // curl's message; empty on success
  Millis duration{0};        // start of the transfer to its end
  std::string body_head;     // first max_response_bytes of the body
};

class HttpClient {
 public:
  HttpClient(boost::asio::io_context& io, HttpClientOptions options);
  ~HttpClient();  // aborts transfers still running; their handlers are not called
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts a POST; `done` runs exactly once on the io thread, never from inside post().
  // Redirects are not followed; connections are kept alive and reused.
  void post(HttpRequest request, std::function<void(HttpResponse)> done);

  std::size_t in_flight() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd
