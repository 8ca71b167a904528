#include "receiver.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <optional>
#include <thread>

namespace callbackd::load {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Receiver::Impl {
 public:
  explicit Impl(ReceiverOptions options) : options_(std::move(options)) {
    const auto address = asio::ip::make_address(options_.bind);
    for (int k = 0; k < kKinds; ++k) {
      if (k != 0 && !options_.hostile) continue;
      acceptors_[k].emplace(io_, tcp::endpoint(address, 0));
      accept(static_cast<Kind>(k));
    }
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Impl() { stop(); }

  void stop() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  std::string url(Kind kind) const {
    const auto& acceptor = acceptors_[static_cast<int>(kind)];
    if (!acceptor) return {};
    return "http://" + options_.bind + ":" + std::to_string(acceptor->local_endpoint().port()) +
           "/" + kind_name(kind);
  }

  // Returns the status to answer with (0: never answer).
  void on_request(Kind kind, const std::string& body, std::string_view signature) {
    const bool signature_ok = verify(options_.secrets[static_cast<int>(kind)], body, signature);
    const auto ref = parse_task_ref(body);
    const std::int64_t now = steady_micros();
    std::lock_guard lock(mutex_);
    ++counts_.requests[static_cast<int>(kind)];
    if (!signature_ok) ++counts_.bad_signature;
    if (!ref) {
      ++counts_.unparsable;
      return;
    }
    if (kind != Kind::kGood) return;
    if (ref->index >= seen_.size())
      seen_.resize(std::max<std::size_t>(ref->index + 1, seen_.size() * 2));
    if (seen_[ref->index]) {
      ++counts_.duplicates;
      return;
    }
    seen_[ref->index] = 1;
    ++counts_.delivered;
    counts_.last_delivery_us = now;
    recent_.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - ref->scheduled_us)));
  }

  ReceiverCounts counts() {
    std::lock_guard lock(mutex_);
    return counts_;
  }
  Histogram take_recent() {
    std::lock_guard lock(mutex_);
    Histogram h = recent_;
    recent_.reset();
    return h;
  }
  std::vector<std::uint8_t> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  asio::io_context& io() { return io_; }
  const ReceiverOptions& options() const { return options_; }

 private:
  static bool verify(const std::string& secret, const std::string& body,
                     std::string_view signature) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &length);
    static constexpr char kHex[] = "0123456789abcdef";
    char expected[2 * EVP_MAX_MD_SIZE];
    for (unsigned int i = 0; i < length; ++i) {
      expected[2 * i] = kHex[mac[i] >> 4];
      expected[2 * i + 1] = kHex[mac[i] & 15];
    }
    return signature.size() == 2 * length &&
           CRYPTO_memcmp(expected, signature.data(), signature.size()) == 0;
  }

  void accept(Kind kind);

  ReceiverOptions options_;
  asio::io_context io_{1};
  std::array<std::optional<tcp::acceptor>, kKinds> acceptors_;
  std::thread thread_;
  std::mutex mutex_;
  ReceiverCounts counts_;
  Histogram recent_;
  std::vector<std::uint8_t> seen_ = std::vector<std::uint8_t>(1 << 16);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Receiver::Impl& receiver, Kind kind, tcp::socket socket)
      : receiver_(receiver), kind_(kind), socket_(std::move(socket)), timer_(receiver.io()) {}

  void read() {
    parser_.emplace();
    parser_->body_limit(16 << 20);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code error, std::size_t) {
                       if (!error) self->on_request();
                     });
  }

 private:
  void on_request() {
    auto request = parser_->release();
    receiver_.on_request(kind_, request.body(), request[std::string_view("X-Signature")]);
    keep_alive_ = request.keep_alive();
    switch (kind_) {
      case Kind::kGood:
        return answer(http::status::no_content);
      case Kind::kFail:
        return answer(http::status::internal_server_error);
      case Kind::kSilent:
        return read();  // never answers; the read ends when the sender gives up and closes
      case Kind::kSlow:
        timer_.expires_after(std::chrono::microseconds(
            static_cast<std::int64_t>(receiver_.options().slow_seconds * 1e6)));
        timer_.async_wait([self = shared_from_this()](beast::error_code) {
          self->answer(http::status::no_content);
        });
        return;
    }
  }

  void answer(http::status status) {
    response_ = {};
    response_.result(status);
    response_.keep_alive(keep_alive_);
    response_.prepare_payload();
    http::async_write(socket_, response_,
                      [self = shared_from_this()](beast::error_code error, std::size_t) {
                        if (!error && self->keep_alive_) self->read();
                      });
  }

  Receiver::Impl& receiver_;
  Kind kind_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::empty_body> response_;
  bool keep_alive_ = true;
};

}  // namespace

void Receiver::Impl::accept(Kind kind) {
  acceptors_[static_cast<int>(kind)]->async_accept(
      [this, kind](beast::error_code error, tcp::socket socket) {
        if (!error) {
          socket.set_option(tcp::no_delay(true));
          std::make_shared<Session>(*this, kind, std::move(socket))->read();
        }
        accept(kind);
      });
}

Receiver::Receiver(ReceiverOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Receiver::~Receiver() = default;
std::string Receiver::url(Kind kind) const { return impl_->url(kind); }
ReceiverCounts Receiver::counts() const { return impl_->counts(); }
Histogram Receiver::take_recent() { return impl_->take_recent(); }
std::vector<std::uint8_t> Receiver::seen() const { return impl_->seen(); }
void Receiver::stop() { impl_->stop(); }

}  // namespace callbackd::load
