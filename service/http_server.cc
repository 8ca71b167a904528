#include "http_server.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "json_views.h"

namespace callbackd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// After an error reply we stop reading requests but keep draining what the client still
// sends for this long, so closing does not reset the connection before it reads the reply.
constexpr Millis kDrainTime{2000};

// A request body this large leaves freed heap behind on the worker thread's arena; giving it
// back keeps the daemon's memory flat through a stream of large (or hostile) requests.
constexpr std::size_t kTrimAfterBodyBytes = 64 << 10;
// Reads grow a connection's buffer up to 64 KiB; an idle keep-alive connection keeps less.
constexpr std::size_t kReadChunkBytes = 64 << 10;
constexpr std::size_t kIdleBufferBytes = 16 << 10;

// Accepting after a failure (EMFILE: out of descriptors) is retried after 10 ms, doubling up
// to 1 s: the listening socket stays readable, so retrying at once would spin a core.
constexpr Millis kFirstAcceptBackoff{10};
constexpr Millis kMaxAcceptBackoff{1000};

std::string refusal_response(std::size_t max_connections) {
  const std::string body = error_json(
      "too_many_connections", "more than max_connections (" + std::to_string(max_connections) +
                                  ") connections are open; retry later");
  return "HTTP/1.1 503 Service Unavailable\r\nServer: callbackd\r\n"
         "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

class HttpServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer& server, tcp::socket socket)
      : server_(&server), stream_(std::move(socket)), handle_timer_(stream_.get_executor()) {}
  ~Session() {
    if (server_ != nullptr) server_->session_ended(this);
  }

  void start() { read_header(); }

  // Called at shutdown: a connection waiting for its next request is closed now; one whose
  // request is being handled is closed after its reply.
  void close_if_idle() {
    if (reading_) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_.socket().close(ignored);
    }
  }
  void detach() { server_ = nullptr; }

 private:
  // A reference for other threads (the workers, the engine's commit thread): whichever thread
  // drops the last one, the session itself is released on its own executor, because its
  // destructor touches the server's session set, which only the io thread may.
  std::shared_ptr<Session> io_bound_ref() {
    return std::shared_ptr<Session>(
        this, [self = shared_from_this(), executor = stream_.get_executor()](Session*) mutable {
          asio::post(executor, [self = std::move(self)] {});
        });
  }

  // Waits for the next request under idle_timeout; its first bytes start the read bound.
  void read_header() {
    if (server_ == nullptr || server_->shutting_down_) return close();
    reading_ = true;
    if (buffer_.capacity() > kIdleBufferBytes) buffer_.shrink_to_fit();
    parser_.emplace();
    parser_->body_limit(server_->options_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_->options_.max_header_bytes));
    // Bytes left over from the last read (a pipelined request) have started this one already.
    if (buffer_.size() > 0) return read_rest_of_header();
    stream_.expires_after(server_->options_.idle_timeout);
    stream_.async_read_some(
        buffer_.prepare(beast::read_size(buffer_, kReadChunkBytes)),
        beast::bind_front_handler(&Session::on_first_bytes, shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, std::size_t bytes) {
    if (ec) return on_read_error(ec);
    buffer_.commit(bytes);
    read_rest_of_header();
  }

  // Covers the header and the body: a client that trickles either is cut at this bound.
  void read_rest_of_header() {
    stream_.expires_after(server_->options_.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    reading_ = false;
    const auto& request = parser_->get();
    version_ = request.version();
    head_request_ = request.method() == http::verb::head;
    // Refused on its head (a wrong token, say): the body is never read nor asked for.
    if (server_->head_check_) {
      ApiRequest head{std::string(request.method_string()),
                      std::string(request.target()),
                      std::string(request[http::field::authorization]),
                      {}};
      if (std::optional<ApiResponse> refusal = server_->head_check_(head)) {
        return reply_and_close(std::move(*refusal));
      }
    }
    // curl and others wait for "100 Continue" before sending a larger body.
    if (beast::iequals(request[http::field::expect], "100-continue")) {
      auto interim = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                        request.version());
      stream_.expires_after(server_->options_.write_timeout);
      http::async_write(stream_, *interim,
                        [self = shared_from_this(), interim](beast::error_code ec, std::size_t) {
                          if (ec) return self->close();
                          // The client sends its body only now: it gets a read bound of its own.
                          self->stream_.expires_after(self->server_->options_.read_timeout);
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  // Under the deadline the header was read with (or the fresh one after "100 Continue").
  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_body, shared_from_this()));
  }

  void on_read_error(beast::error_code ec) {
    reading_ = false;
    if (ec == http::error::body_limit) {
      return reply_and_close(error_response(413, "payload_too_large",
                                            "body: larger than max_body_bytes (" +
                                                std::to_string(server_->options_.max_body_bytes) +
                                                " bytes)"));
    }
    if (ec == http::error::header_limit) {
      return reply_and_close(error_response(
          431, "headers_too_large",
          "headers: larger than " + std::to_string(server_->options_.max_header_bytes) + " bytes"));
    }
    const bool connection_gone = ec == http::error::end_of_stream || ec == beast::error::timeout ||
                                 ec == asio::error::operation_aborted ||
                                 ec == asio::error::connection_reset || ec == asio::error::eof ||
                                 ec == http::error::partial_message;
    if (connection_gone) return close();
    reply_and_close(error_response(400, "malformed_request", "HTTP: " + ec.message()));
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    auto& request = parser_->get();
    ApiRequest api{std::string(request.method_string()), std::string(request.target()),
                   std::string(request[http::field::authorization]), std::move(request.body())};
    keep_alive_ = request.keep_alive();
    parser_.reset();  // the body now lives in `api` only
    start_handling();
    // A large body is parsed on a worker, not here, where it would hold up every connection.
    if (server_->quick_handler_ && api.body.size() < kTrimAfterBodyBytes &&
        server_->quick_handler_(api, respond_through(io_bound_ref(), request_number_))) {
      return;
    }
    asio::post(server_->workers_, [session = io_bound_ref(), number = request_number_,
                                   api = std::move(api)]() mutable {
      const bool large = api.body.size() >= kTrimAfterBodyBytes;
      session->server_->handler_(api, respond_through(session, number));
      if (large) {
        std::string().swap(api.body);
        malloc_trim(0);
      }
    });
  }

  // The handler's time is bounded by handle_timeout, not by a socket deadline: one would cut
  // the connection, and the answer with it, however soon after the handler it came.
  void start_handling() {
    ++request_number_;
    awaiting_answer_ = true;
    stream_.expires_never();
    handle_deadline_ = std::chrono::steady_clock::now() + server_->options_.handle_timeout;
    if (!handle_timer_armed_) arm_handle_timer();
  }

  // The timer is not cancelled when an answer comes: on a busy keep-alive connection it stays
  // armed and is moved on to the request in hand when it fires, sparing the quick path a timer
  // set and cancel per request. It holds the session weakly, so a closed connection ends at
  // once, not at the timer.
  void arm_handle_timer() {
    handle_timer_armed_ = true;
    handle_timer_.expires_at(handle_deadline_);
    handle_timer_.async_wait([session = weak_from_this()](beast::error_code ec) {
      if (std::shared_ptr<Session> self = session.lock()) self->on_handle_timer(ec);
    });
  }

  void on_handle_timer(beast::error_code ec) {
    handle_timer_armed_ = false;
    if (ec || !awaiting_answer_ || server_ == nullptr) return;
    if (std::chrono::steady_clock::now() < handle_deadline_) return arm_handle_timer();
    on_handle_timeout();
  }

  // Answers from any thread: the response goes back to the io thread, the only one that ever
  // uses the session. `session` is an io_bound_ref(); `number` the request it answers.
  static Respond respond_through(std::shared_ptr<Session> session, std::uint64_t number) {
    return [session = std::move(session), number](ApiResponse response) {
      asio::post(session->stream_.get_executor(),
                 [session, number, response = std::move(response)]() mutable {
                   session->on_answer(number, std::move(response));
                 });
    };
  }

  // An answer after the request has had its 503 (or a second one) is dropped.
  void on_answer(std::uint64_t number, ApiResponse response) {
    if (!awaiting_answer_ || number != request_number_) return;
    awaiting_answer_ = false;
    write(std::move(response));
  }

  // Answers for the handler, which has taken too long: the client may retry elsewhere.
  void on_handle_timeout() {
    awaiting_answer_ = false;
    const Millis bound = server_->options_.handle_timeout;
    if (std::optional<std::uint64_t> suppressed = server_->handle_timeout_log_.admit()) {
      spdlog::warn("event=handle_timeout handle_timeout_ms={} suppressed={}", bound.count(),
                   *suppressed);
    }
    ApiResponse response = error_response(
        503, "timeout",
        "the request was not answered within handle_timeout (" + std::to_string(bound.count()) +
            " ms); it may still take effect: check before retrying");
    response.headers.emplace_back("Retry-After", "1");
    reply_and_close(std::move(response));
  }

  void write(ApiResponse response, bool then_drain = false) {
    if (server_ == nullptr) return close();  // the server is gone, and its options with it
    auto message = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), version_);
    message->set(http::field::server, "callbackd");
    message->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) message->set(name, value);
    const bool keep_alive = keep_alive_ && !then_drain && !server_->shutting_down_;
    message->keep_alive(keep_alive);
    if (head_request_) {
      // HEAD: the headers a GET would get, without its body.
      message->content_length(response.body.size());
    } else {
      message->body() = std::move(response.body);
      message->prepare_payload();
    }
    // A fresh bound, whatever the read and the handler took: a client that never reads its
    // response is cut off.
    stream_.expires_after(server_->options_.write_timeout);
    http::async_write(stream_, *message,
                      [self = shared_from_this(), message, keep_alive, then_drain](
                          beast::error_code ec, std::size_t) {
                        if (ec) return self->close();
                        if (then_drain) return self->drain();
                        if (!keep_alive) return self->close();
                        self->read_header();
                      });
  }

  void reply_and_close(ApiResponse response) {
    if (server_ == nullptr) return close();
    write(std::move(response), /*then_drain=*/true);
  }

  void drain() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kDrainTime);
    drain_some();
  }

  void drain_some() {
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->close();
                              self->drain_some();
                            });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  HttpServer* server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::array<char, 8192> scratch_{};
  asio::steady_timer handle_timer_;
  std::chrono::steady_clock::time_point handle_deadline_{};
  std::uint64_t request_number_ = 0;  // the request being handled, so an answer finds its own
  bool awaiting_answer_ = false;
  bool handle_timer_armed_ = false;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_request_ = false;
  bool reading_ = false;
};

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options, RequestHandler handler,
                       HeadCheck head_check, QuickHandler quick_handler)
    : io_(io),
      options_(std::move(options)),
      handler_(std::move(handler)),
      head_check_(std::move(head_check)),
      quick_handler_(std::move(quick_handler)),
      acceptor_(io),
      workers_(options_.handler_threads),
      accept_retry_(io),
      refusal_(refusal_response(options_.max_connections)) {}

HttpServer::~HttpServer() {
  workers_.join();
  for (Session* session : sessions_) session->detach();
}

Status HttpServer::start() {
  Result<ListenAddress> listen = parse_listen_address(options_.listen);
  if (!listen.ok()) return Status(listen.status().code(), "listen: " + listen.status().message());
  const tcp::endpoint endpoint(listen->address, listen->port);
  boost::system::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable("listen " + options_.listen + ": " + ec.message());
  }
  do_accept();
  return Status::Ok();
}

tcp::endpoint HttpServer::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void HttpServer::do_accept() {
  // Sessions share the io thread: no strands needed.
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) return on_accept_failed(ec);
    accept_backoff_ = Millis(0);
    if (sessions_.size() >= options_.max_connections) {
      refuse(std::move(socket));
    } else {
      auto session = std::make_shared<Session>(*this, std::move(socket));
      sessions_.insert(session.get());
      open_connections_.store(sessions_.size());
      session->start();
    }
    if (!shutting_down_) do_accept();
  });
}

void HttpServer::on_accept_failed(const boost::system::error_code& ec) {
  accept_backoff_ = std::clamp(accept_backoff_ * 2, kFirstAcceptBackoff, kMaxAcceptBackoff);
  if (std::optional<std::uint64_t> suppressed = accept_failed_log_.admit()) {
    spdlog::warn(
        "event=accept_failed error=\"{}\" open_connections={} retry_in_ms={} "
        "suppressed={}",
        ec.message(), sessions_.size(), accept_backoff_.count(), *suppressed);
  }
  accept_retry_.expires_after(accept_backoff_);
  accept_retry_.async_wait([this](const boost::system::error_code& error) {
    if (error || shutting_down_) return;
    do_accept();
  });
}

void HttpServer::refuse(tcp::socket socket) {
  // Answered and closed at once, without a session: a refused connection costs no buffer and
  // no timer. The reply fits in an empty socket buffer, so a non-blocking write sends it all.
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  // Read what the client already sent, so closing does not reset the connection before it
  // reads the reply.
  std::array<char, 16 << 10> discard;
  socket.read_some(asio::buffer(discard), ignored);
  socket.write_some(asio::buffer(refusal_), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
  if (std::optional<std::uint64_t> suppressed = refused_log_.admit()) {
    spdlog::warn(
        "event=connection_refused reason=too_many_connections max_connections={} "
        "suppressed={}",
        options_.max_connections, *suppressed);
  }
}

void HttpServer::session_ended(Session* session) {
  sessions_.erase(session);
  open_connections_.store(sessions_.size());
  maybe_finish_shutdown();
}

void HttpServer::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  for (Session* session : sessions_) session->close_if_idle();
  maybe_finish_shutdown();
}

void HttpServer::maybe_finish_shutdown() {
  if (!shutting_down_ || !sessions_.empty() || !shutdown_done_) return;
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  asio::post(io_, std::move(done));
}

}  // namespace callbackd
