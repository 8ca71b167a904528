#include "receiver.h"

#include <pthread.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

namespace callbackd::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Receiver::Impl {
 public:
  Impl(Responder responder, bool record, std::optional<TlsFiles> tls)
      : responder_(std::move(responder)),
        record_(record),
        acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    if (tls) {
      tls_.emplace(asio::ssl::context::tls_server);
      tls_->use_certificate_chain_file(tls->certificate_chain_pem);
      tls_->use_private_key_file(tls->private_key_pem, asio::ssl::context::pem);
    }
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "test-receiver");
      io_.run();
    });
  }

  ~Impl() {
    io_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return port_; }
  bool tls() const { return tls_.has_value(); }

  void set_responder(Responder responder) {
    std::lock_guard lock(mutex_);
    responder_ = std::move(responder);
  }
  std::vector<ReceivedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mutex_);
    while (count_ < n) {
      // Woken only once the smallest count waited for is reached, not per request: a waiter
      // woken by each request costs a context switch per delivery, which benchmarks would count.
      wake_at_ = std::min(wake_at_, n);
      if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout) return count_ >= n;
    }
    return true;
  }
  std::size_t connections_accepted() const {
    std::lock_guard lock(mutex_);
    return connections_;
  }

  // Records the request and decides the reply (on the io thread).
  Reply receive(ReceivedRequest request) {
    Responder responder;
    {
      std::lock_guard lock(mutex_);
      responder = responder_;
    }
    Reply reply = responder ? responder(request) : Reply{};
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      ++count_;
      if (record_) requests_.push_back(std::move(request));
      if (count_ >= wake_at_) {
        wake = true;
        wake_at_ = SIZE_MAX;  // waiters still short of their count set it again
      }
    }
    if (wake) arrived_.notify_all();
    return reply;
  }

  asio::io_context& io() { return io_; }
  asio::ssl::context& tls_context() { return *tls_; }

 private:
  void accept();

  asio::io_context io_;
  Responder responder_;
  const bool record_;
  tcp::acceptor acceptor_;
  std::optional<asio::ssl::context> tls_;
  std::uint16_t port_ = 0;
  std::thread thread_;

  mutable std::mutex mutex_;
  mutable std::condition_variable arrived_;
  std::vector<ReceivedRequest> requests_;
  std::size_t count_ = 0;
  mutable std::size_t wake_at_ = SIZE_MAX;  // the smallest count a waiter waits for
  std::size_t connections_ = 0;
};

namespace {

// One connection: read a request, ask the receiver, answer (or not), repeat while kept alive.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Receiver::Impl& receiver, Stream stream)
      : receiver_(receiver), stream_(std::move(stream)), timer_(receiver.io()) {}

  void start() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->read();
                              });
    } else {
      read();
    }
  }

 private:
  void read() {
    request_ = {};
    http::async_read(stream_, buffer_, request_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec) return;  // closed by the client, or the receiver is stopping
    ReceivedRequest received;
    received.method = std::string(request_.method_string());
    received.target = std::string(request_.target());
    for (const auto& field : request_) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      received.headers[name] = std::string(field.value());
    }
    received.body = std::move(request_.body());
    received.received_at = std::chrono::steady_clock::now();
    keep_alive_ = request_.keep_alive();
    version_ = request_.version();
    Reply reply = receiver_.receive(std::move(received));

    if (reply.close_connection) return close();
    if (reply.hang) return read();  // never answer; notice when the client gives up
    if (reply.delay.count() > 0) {
      timer_.expires_after(reply.delay);
      timer_.async_wait([self = this->shared_from_this(), reply](beast::error_code ec) {
        if (!ec) self->write(reply);
      });
      return;
    }
    write(reply);
  }

  void write(const Reply& reply) {
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), version_);
    for (const auto& [name, value] : reply.headers) response->set(name, value);
    response->body() = reply.body;
    response->keep_alive(keep_alive_);
    response->prepare_payload();
    http::async_write(
        stream_, *response,
        [self = this->shared_from_this(), response](beast::error_code ec, std::size_t) {
          if (ec || !response->keep_alive()) return self->close();
          self->read();
        });
  }

  void close() {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).socket().close(ignored);
  }

  Receiver::Impl& receiver_;
  Stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
};

}  // namespace

void Receiver::Impl::accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec) return;
    {
      std::lock_guard lock(mutex_);
      ++connections_;
    }
    if (tls_) {
      using Stream = beast::ssl_stream<beast::tcp_stream>;
      std::make_shared<Session<Stream>>(*this, Stream(beast::tcp_stream(std::move(socket)), *tls_))
          ->start();
    } else {
      std::make_shared<Session<beast::tcp_stream>>(*this, beast::tcp_stream(std::move(socket)))
          ->start();
    }
    accept();
  });
}

Receiver::Receiver(Responder responder, bool record)
    : impl_(std::make_unique<Impl>(std::move(responder), record, std::nullopt)) {}
Receiver::Receiver(Responder responder, TlsFiles tls)
    : impl_(std::make_unique<Impl>(std::move(responder), true, std::move(tls))) {}
Receiver::~Receiver() = default;

std::uint16_t Receiver::port() const { return impl_->port(); }
std::string Receiver::url(std::string_view path) const {
  return (impl_->tls() ? "https://localhost:" : "http://127.0.0.1:") +
         std::to_string(impl_->port()) + std::string(path);
}
void Receiver::set_responder(Responder responder) { impl_->set_responder(std::move(responder)); }
std::vector<ReceivedRequest> Receiver::requests() const { return impl_->requests(); }
std::size_t Receiver::count() const { return impl_->count(); }
bool Receiver::wait_for_count(std::size_t n, std::chrono::milliseconds timeout) const {
  return impl_->wait_for_count(n, timeout);
}
std::size_t Receiver::connections_accepted() const { return impl_->connections_accepted(); }

std::uint16_t unused_loopback_port() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

}  // namespace callbackd::testing
