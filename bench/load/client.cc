#include "client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

namespace callbackd::load {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Kind kind_of(std::uint64_t index, const std::array<int, kKinds>& percent) {
  // Spread each kind evenly over the run rather than in blocks.
  const int slot = static_cast<int>((index * 37) % 100);
  int bound = 0;
  for (int k = 1; k < kKinds; ++k) {
    bound += percent[k];
    if (slot < bound) return static_cast<Kind>(k);
  }
  return Kind::kGood;
}

namespace {

std::string task_body(const ClientOptions& o, std::uint64_t index, std::int64_t scheduled_us) {
  const int kind = static_cast<int>(kind_of(index, o.percent));
  std::string body = "{\"app_id\":\"" + o.app_ids[kind] + "\",\"callback_url\":\"" + o.urls[kind] +
                     "\",\"task_id\":\"" + make_task_id(o.run, index, scheduled_us) + "\",";
  if (static_cast<int>(index % 100) < o.failed_percent) {
    body += R"("status":"failed","endpoint":"generate","error":"content policy: lyrics rejected"})";
  } else {
    body += R"("status":"completed","endpoint":"generate","results":[{"id":"clip_1",)"
            R"("audio_url":"https://cdn.example/1.mp3","image_url":"https://cdn.example/1.jpg",)"
            R"("title":"Night Drive","duration":182.5,"tags":"synthwave","prompt":"[Verse] neon",)"
            R"("expire_at":1767225600000}]})";
  }
  return body;
}

std::chrono::steady_clock::time_point at_micros(std::int64_t us) {
  return std::chrono::steady_clock::time_point(std::chrono::microseconds(us));
}

}  // namespace

class Client::Impl {
 public:
  explicit Impl(ClientOptions options) : o_(std::move(options)), pacer_(io_) {
    interval_us_ = o_.rate > 0 ? 1e6 / o_.rate : 0;
    if (o_.count == 0 && o_.rate > 0) o_.count = static_cast<std::uint64_t>(o_.rate * o_.duration);
  }

  void start(std::int64_t start_us) {
    start_us_ = start_us;
    end_us_ = o_.count == 0 ? start_us + static_cast<std::int64_t>(o_.duration * 1e6) : 0;
    endpoints_ = tcp::resolver(io_).resolve(o_.host, o_.port);
    for (int i = 0; i < o_.connections; ++i) {
      connections_.push_back(std::make_unique<Connection>(io_));
      connect(*connections_.back());
    }
    thread_ = std::thread([this] { io_.run(); });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  ClientCounts counts() {
    std::lock_guard lock(mutex_);
    return counts_;
  }
  Histogram take_recent() {
    std::lock_guard lock(mutex_);
    Histogram h = recent_;
    recent_.reset();
    return h;
  }
  std::vector<std::uint8_t> accepted() const { return accepted_; }

 private:
  struct Connection {
    explicit Connection(asio::io_context& io) : socket(io), deadline(io) {}
    tcp::socket socket;
    asio::steady_timer deadline;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    std::optional<http::response_parser<http::string_body>> parser;
    std::uint64_t index = 0;
    std::int64_t scheduled_us = 0;
    bool timed_out = false;
  };

  bool issuing_done(std::int64_t now) const {
    return o_.count ? next_ >= o_.count : now >= end_us_;
  }
  std::int64_t due(std::uint64_t index, std::int64_t now) const {
    return interval_us_ > 0
               ? start_us_ + static_cast<std::int64_t>(static_cast<double>(index) * interval_us_)
               : now;
  }

  void connect(Connection& c) {
    if (finished_) return;
    c.socket = tcp::socket(io_);
    asio::async_connect(c.socket, endpoints_, [this, &c](beast::error_code error, const auto&) {
      if (error) {
        error_kind("connect");
        retry_later(c);
        return;
      }
      c.socket.set_option(tcp::no_delay(true));
      idle(c);
    });
  }
  void retry_later(Connection& c) {
    if (issuing_done(steady_micros())) return finish_if_done();
    c.deadline.expires_after(std::chrono::milliseconds(100));
    c.deadline.async_wait([this, &c](beast::error_code) { connect(c); });
  }

  // A connection with nothing to do takes the next due send, or waits for the pacer.
  void idle(Connection& c) {
    if (take(c)) return;
    idle_.push_back(&c);
    arm_pacer();
    finish_if_done();
  }
  bool take(Connection& c) {
    const std::int64_t now = steady_micros();
    if (issuing_done(now)) return false;
    const std::int64_t scheduled = due(next_, now);
    if (scheduled > now) return false;
    send(c, next_++, scheduled);
    return true;
  }
  void arm_pacer() {
    if (pacer_armed_ || idle_.empty() || issuing_done(steady_micros())) return;
    pacer_armed_ = true;
    pacer_.expires_at(at_micros(due(next_, steady_micros())));
    pacer_.async_wait([this](beast::error_code) {
      pacer_armed_ = false;
      while (!idle_.empty() && take(*idle_.front())) idle_.pop_front();
      arm_pacer();
      finish_if_done();
    });
  }
  void finish_if_done() {
    if (!issuing_done(steady_micros()) || in_flight_ > 0 || finished_) return;
    finished_ = true;
    pacer_.cancel();
    for (auto& c : connections_) {
      beast::error_code ignored;
      c->socket.close(ignored);
      c->deadline.cancel();
    }
    std::lock_guard lock(mutex_);
    counts_.done = true;
  }

  void send(Connection& c, std::uint64_t index, std::int64_t scheduled_us) {
    c.index = index;
    c.scheduled_us = scheduled_us;
    c.timed_out = false;
    c.request = {};
    c.request.method(http::verb::post);
    c.request.target("/v1/callbacks");
    c.request.version(11);
    c.request.set(http::field::host, o_.host);
    c.request.set(http::field::content_type, "application/json");
    if (!o_.token.empty()) c.request.set(http::field::authorization, "Bearer " + o_.token);
    c.request.body() = task_body(o_, index, scheduled_us);
    c.request.prepare_payload();
    ++in_flight_;
    {
      std::lock_guard lock(mutex_);
      ++counts_.sent;
      ++counts_.in_flight;
    }
    c.deadline.expires_after(
        std::chrono::microseconds(static_cast<std::int64_t>(o_.timeout * 1e6)));
    c.deadline.async_wait([&c](beast::error_code error) {
      if (error) return;
      c.timed_out = true;
      beast::error_code ignored;
      c.socket.close(ignored);
    });
    http::async_write(c.socket, c.request, [this, &c](beast::error_code error, std::size_t) {
      if (error) return failed(c, error);
      c.parser.emplace();
      http::async_read(c.socket, c.buffer, *c.parser,
                       [this, &c](beast::error_code error, std::size_t) {
                         if (error) return failed(c, error);
                         answered(c);
                       });
    });
  }

  void answered(Connection& c) {
    c.deadline.cancel();
    --in_flight_;
    const auto response = c.parser->release();
    const int status = static_cast<int>(response.result_int());
    const std::int64_t now = steady_micros();
    {
      std::lock_guard lock(mutex_);
      --counts_.in_flight;
      if (status == 202 || status == 200) {
        ++counts_.accepted;
        counts_.last_accept_us = now;
        recent_.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - c.scheduled_us)));
        if (c.index >= accepted_.size())
          accepted_.resize(std::max<std::size_t>(c.index + 1, accepted_.size() * 2));
        accepted_[c.index] = 1;
      } else {
        ++counts_.errors["http_" + std::to_string(status)];
      }
    }
    if (!response.keep_alive()) {
      beast::error_code ignored;
      c.socket.close(ignored);
      return connect(c);
    }
    idle(c);
  }

  void failed(Connection& c, beast::error_code error) {
    c.deadline.cancel();
    --in_flight_;
    {
      std::lock_guard lock(mutex_);
      --counts_.in_flight;
    }
    if (finished_) return;
    error_kind(c.timed_out ? "timeout" : error == http::error::end_of_stream ? "closed" : "reset");
    beast::error_code ignored;
    c.socket.close(ignored);
    c.buffer.clear();
    connect(c);
    finish_if_done();
  }

  void error_kind(const std::string& kind) {
    std::lock_guard lock(mutex_);
    ++counts_.errors[kind];
  }

  ClientOptions o_;
  asio::io_context io_{1};
  asio::steady_timer pacer_;
  bool pacer_armed_ = false;
  tcp::resolver::results_type endpoints_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::deque<Connection*> idle_;
  std::thread thread_;
  double interval_us_ = 0;
  std::int64_t start_us_ = 0;
  std::int64_t end_us_ = 0;
  std::uint64_t next_ = 0;
  std::uint64_t in_flight_ = 0;
  bool finished_ = false;

  std::mutex mutex_;
  ClientCounts counts_;
  Histogram recent_;
  std::vector<std::uint8_t> accepted_ = std::vector<std::uint8_t>(1 << 16);
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() { join(); }
void Client::start(std::int64_t start_us) { impl_->start(start_us); }
void Client::join() { impl_->join(); }
ClientCounts Client::counts() const { return impl_->counts(); }
Histogram Client::take_recent() { return impl_->take_recent(); }
std::vector<std::uint8_t> Client::accepted() const { return impl_->accepted(); }

}  // namespace callbackd::load
