// A real HTTP/1.1 receiver on a loopback port, for tests and benchmarks: records what arrives
// and answers as the test says (status, body, delay, hang, close). Optionally over TLS.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callbackd::testing {

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::chrono::steady_clock::time_point received_at;
};

struct Reply {
  int status = 204;
  std::string body;
  std::chrono::milliseconds delay{0};  // answer this long after the request arrived
  bool hang = false;                   // never answer (the connection stays open)
  bool close_connection = false;       // close without answering
  std::vector<std::pair<std::string, std::string>> headers;
};

using Responder = std::function<Reply(const ReceivedRequest&)>;

struct TlsFiles {
  std::string certificate_chain_pem;
  std::string private_key_pem;
};

// Thread-safe. Serves on its own thread until destroyed; delays and hangs never block other
// connections.
class Receiver {
 public:
  // `record` false: count requests but keep nothing (a fast sink for benchmarks).
  explicit Receiver(Responder responder = {}, bool record = true);
  Receiver(Responder responder, TlsFiles tls);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  std::uint16_t port() const;
  // "http://127.0.0.1:<port><path>" ("https://localhost:<port><path>" with TLS).
  std::string url(std::string_view path = "/hook") const;
  void set_responder(Responder responder);

  std::vector<ReceivedRequest> requests() const;
  std::size_t count() const;
  bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout) const;
  std::size_t connections_accepted() const;

  class Impl;  // public so that its connection sessions (in the .cc) can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// A loopback port nothing listens on (bound once, then released), for refused connections.
std::uint16_t unused_loopback_port();

}  // namespace callbackd::testing
