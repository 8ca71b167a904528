#include "http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace callbackd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// After an error reply we stop reading requests but keep draining what the client still
// sends for this long, so closing does not reset the connection before it reads the reply.
constexpr Millis kDrainTime{2000};

}  // namespace

class HttpServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer& server, tcp::socket socket) : server_(&server), stream_(std::move(socket)) {}
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
  void read_header() {
    if (server_ == nullptr || server_->shutting_down_) return close();
    reading_ = true;
    parser_.emplace();
    parser_->body_limit(server_->options_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_->options_.max_header_bytes));
    stream_.expires_after(server_->options_.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    reading_ = false;
    // curl and others wait for "100 Continue" before sending a larger body.
    const auto& request = parser_->get();
    if (beast::iequals(request[http::field::expect], "100-continue")) {
      auto interim = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                        request.version());
      http::async_write(stream_, *interim,
                        [self = shared_from_this(), interim](beast::error_code ec, std::size_t) {
                          if (ec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

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
    version_ = request.version();
    keep_alive_ = request.keep_alive();
    asio::post(server_->workers_, [self = shared_from_this(), api = std::move(api)]() mutable {
      HttpServer* server = self->server_;
      auto executor = self->stream_.get_executor();
      server->handler_(api, [self = std::move(self), executor](ApiResponse response) mutable {
        // Back to the io thread, which is also where the session's last reference must drop.
        asio::post(executor, [self = std::move(self), response = std::move(response)]() mutable {
          self->write(std::move(response));
        });
      });
    });
  }

  void write(ApiResponse response, bool then_drain = false) {
    auto message = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), version_);
    message->set(http::field::server, "callbackd");
    message->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) message->set(name, value);
    message->body() = std::move(response.body);
    const bool keep_alive =
        keep_alive_ && !then_drain && server_ != nullptr && !server_->shutting_down_;
    message->keep_alive(keep_alive);
    message->prepare_payload();
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
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool reading_ = false;
};

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options, RequestHandler handler)
    : io_(io),
      options_(std::move(options)),
      handler_(std::move(handler)),
      acceptor_(io),
      workers_(options_.handler_threads) {}

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
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        spdlog::warn("event=accept_failed error=\"{}\"", ec.message());
      }
      if (!acceptor_.is_open()) return;
    } else {
      auto session = std::make_shared<Session>(*this, std::move(socket));
      sessions_.insert(session.get());
      session->start();
    }
    if (!shutting_down_) do_accept();
  });
}

void HttpServer::session_ended(Session* session) {
  sessions_.erase(session);
  maybe_finish_shutdown();
}

void HttpServer::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  boost::system::error_code ignored;
  acceptor_.close(ignored);
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
