// The sidecar's HTTP/1.1 server (Boost.Beast). Sessions live on one I/O thread. A request the
// quick handler takes is handled right there (an enqueue that needs no store read: one hand-off
// between threads fewer per callback); every other one on a worker pool, because handling may
// read the store. A handler answers when it is ready (an enqueue once its commit is on disk),
// from any thread.
#pragma once

#include <callbackd/status.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "api.h"
#include "log_throttle.h"

namespace callbackd {

struct HttpServerOptions {
  std::string listen = "127.0.0.1:7780";    // port 0 picks a free port
  std::size_t max_body_bytes = 1 << 20;     // larger bodies get 413
  std::size_t max_header_bytes = 16 << 10;  // larger headers get 431
  std::size_t handler_threads = 8;
  // Each phase of a request has its own bound, so that a slow phase never eats another's
  // time (a slow handler used to leave its answer no time to be written):
  // - a connection waiting for its next request is closed after idle_timeout of silence;
  Millis idle_timeout{30000};
  // - once a request's first byte arrives, its header and body must be in within read_timeout
  //   (a fresh one for the body after "100 Continue"), so a client trickling bytes is cut off;
  Millis read_timeout{30000};
  // - a handler that has not answered within handle_timeout gets its client a 503 timeout
  //   (Retry-After: 1, Connection: close); its later answer is dropped. The socket has no
  //   deadline meanwhile;
  Millis handle_timeout{60000};
  // - a response (and a "100 Continue") must be written within write_timeout, so a client that
  //   never reads its response is cut off.
  Millis write_timeout{30000};
  // Connections open at once; one more gets an immediate 503 too_many_connections and is
  // closed (each refusal counted, logged at most once a second).
  std::size_t max_connections = 1024;
};

// Answers a request through its Respond, now or later, from any thread.
using RequestHandler = std::function<void(const ApiRequest&, Respond)>;
// Looks at a request's head (method, target, authorization; the body is still unread) on the
// io thread: a response refuses the request before its body is read or "100 Continue" sent.
// Must be quick and must not block.
using HeadCheck = std::function<std::optional<ApiResponse>(const ApiRequest& head)>;
// Runs on the io thread and must never block: takes the request (answering it through a copy
// of the Respond) and returns true, or returns false to leave it to the RequestHandler.
using QuickHandler = std::function<bool(const ApiRequest&, const Respond&)>;

class HttpServer {
 public:
  // All methods on the io_context's thread.
  HttpServer(boost::asio::io_context& io, HttpServerOptions options, RequestHandler handler,
             HeadCheck head_check = {}, QuickHandler quick_handler = {});
  ~HttpServer();

  // Binds and starts accepting. The error names the address.
  Status start();
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  // Connections open now. Thread-safe.
  std::size_t open_connections() const { return open_connections_.load(); }

  // Stops accepting, closes idle connections, lets requests being handled finish and be
  // answered (by a 503 past handle_timeout), then calls `done` (on the io thread).
  void shutdown(std::function<void()> done);

 private:
  class Session;
  friend class Session;
  void do_accept();
  void on_accept_failed(const boost::system::error_code& ec);
  void refuse(boost::asio::ip::tcp::socket socket);
  void session_ended(Session* session);
  void maybe_finish_shutdown();

  boost::asio::io_context& io_;
  const HttpServerOptions options_;
  RequestHandler handler_;
  HeadCheck head_check_;
  QuickHandler quick_handler_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::thread_pool workers_;
  std::unordered_set<Session*> sessions_;  // touched on the io thread only
  std::atomic<std::size_t> open_connections_{0};
  // Accepting again after an error (out of descriptors, say) waits, longer each time.
  boost::asio::steady_timer accept_retry_;
  Millis accept_backoff_{0};
  LogThrottle accept_failed_log_;
  LogThrottle refused_log_;
  LogThrottle handle_timeout_log_;
  std::string refusal_;  // the whole 503 response a connection past the cap gets
  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
};

}  // namespace callbackd
