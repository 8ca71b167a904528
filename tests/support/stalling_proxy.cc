#include "stalling_proxy.h"

#include <libpq-fe.h>
#include <pthread.h>

#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

namespace callbackd::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using upstream_protocol = asio::generic::stream_protocol;

class StallingProxy::Impl {
 public:
  explicit Impl(const ProxyUpstream& upstream)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    if (!upstream.unix_path.empty()) {
      upstream_ =
          upstream_protocol::endpoint(asio::local::stream_protocol::endpoint(upstream.unix_path));
    } else {
      tcp::resolver resolver(io_);
      auto found = resolver.resolve(upstream.host, std::to_string(upstream.port));
      if (found.empty())
        throw std::runtime_error("stalling proxy: cannot resolve " + upstream.host);
      upstream_ = upstream_protocol::endpoint(found.begin()->endpoint());
    }
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "test-pg-proxy");
      io_.run();
    });
  }

  ~Impl() {
    io_.stop();
    thread_.join();
    parked_.clear();  // the sessions they hold, before the io_context they use
  }

  std::uint16_t port() const { return port_; }
  std::size_t accepted() const { return accepted_; }

  void set_frozen(bool frozen) {
    std::promise<void> done;
    asio::post(io_, [&] {
      frozen_ = frozen;
      if (!frozen_) {
        ++thaws_;
        auto parked = std::move(parked_);
        parked_.clear();
        for (auto& step : parked) step();
      }
      done.set_value();
    });
    done.get_future().wait();
  }

  void set_freeze_marker(std::string marker, bool freeze_all) {
    std::promise<void> done;
    asio::post(io_, [&] {
      freeze_marker_ = std::move(marker);
      freeze_all_at_marker_ = freeze_all;
      done.set_value();
    });
    done.get_future().wait();
  }

  // Whether `data`, sent by a client, holds the marker; if so the marker is spent, and either
  // the whole proxy freezes now or the answer is the thaw count the sender stays frozen until.
  std::optional<std::uint64_t> freezes_sender(std::string_view data) {
    if (freeze_marker_.empty() || data.find(freeze_marker_) == std::string_view::npos) {
      return std::nullopt;
    }
    freeze_marker_.clear();
    if (freeze_all_at_marker_) frozen_ = true;
    return thaws_ + 1;
  }

  // Runs `step` now, or on thaw while frozen (on the io thread only). A session frozen alone
  // passes the thaw count it waits for.
  void when_flowing(std::function<void()> step, std::uint64_t frozen_until_thaw = 0) {
    if (frozen_ || thaws_ < frozen_until_thaw) {
      parked_.push_back(std::move(step));
    } else {
      step();
    }
  }

  asio::io_context& io() { return io_; }
  const upstream_protocol::endpoint& upstream() const { return upstream_; }

 private:
  class Session;
  void accept();

  asio::io_context io_;
  tcp::acceptor acceptor_;
  upstream_protocol::endpoint upstream_;
  std::uint16_t port_ = 0;
  std::atomic<std::size_t> accepted_ = 0;
  bool frozen_ = false;                        // io thread only
  std::uint64_t thaws_ = 0;                    // io thread only
  std::string freeze_marker_;                  // io thread only
  bool freeze_all_at_marker_ = false;          // io thread only
  std::vector<std::function<void()>> parked_;  // io thread only; destroyed before io_
  std::thread thread_;
};

// One client connection and its upstream connection; bytes go both ways in 64 KiB reads, each
// read written out before the next, and each step waits while the proxy is frozen.
class StallingProxy::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& proxy, tcp::socket client)
      : proxy_(proxy), client_(std::move(client)), upstream_(proxy.io()) {}

  void start() {
    proxy_.when_flowing([self = shared_from_this()] {
      self->upstream_.async_connect(self->proxy_.upstream(),
                                    [self](const boost::system::error_code& error) {
                                      if (error) return self->close();
                                      self->pump(self->client_, self->upstream_, self->to_server_);
                                      self->pump(self->upstream_, self->client_, self->to_client_);
                                    });
    });
  }

 private:
  using Buffer = std::array<char, 65536>;

  template <class From, class To>
  void pump(From& from, To& to, Buffer& buffer) {
    from.async_read_some(asio::buffer(buffer), [self = shared_from_this(), &from, &to, &buffer](
                                                   const boost::system::error_code& error,
                                                   std::size_t n) {
      // Even an end of stream waits for the thaw: a frozen link tells nothing, closes included.
      self->proxy_.when_flowing(
          [self, &from, &to, &buffer, error, n] {
            if (error) return self->close();
            if (&buffer == &self->to_server_) {
              if (auto until = self->proxy_.freezes_sender({buffer.data(), n})) {
                self->frozen_until_thaw_ = *until;
              }
            }
            asio::async_write(
                to, asio::buffer(buffer.data(), n),
                [self, &from, &to, &buffer](const boost::system::error_code& failed, std::size_t) {
                  if (failed) return self->close();
                  self->proxy_.when_flowing(
                      [self, &from, &to, &buffer] { self->pump(from, to, buffer); },
                      self->frozen_until_thaw_);
                });
          },
          self->frozen_until_thaw_);
    });
  }

  void close() {
    boost::system::error_code ignored;
    client_.close(ignored);
    upstream_.close(ignored);
  }

  Impl& proxy_;
  tcp::socket client_;
  upstream_protocol::socket upstream_;
  Buffer to_server_{};
  Buffer to_client_{};
  std::uint64_t frozen_until_thaw_ = 0;  // frozen alone (freeze_after) until this many thaws
};

void StallingProxy::Impl::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& error, tcp::socket client) {
    if (!error) {
      ++accepted_;
      std::make_shared<Session>(*this, std::move(client))->start();
    }
    accept();
  });
}

StallingProxy::StallingProxy(ProxyUpstream upstream, std::string dbname, std::string user)
    : impl_(std::make_unique<Impl>(upstream)), dbname_(std::move(dbname)), user_(std::move(user)) {}

std::unique_ptr<StallingProxy> StallingProxy::for_postgres(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    const std::string message = error ? error : "out of memory";
    PQfreemem(error);
    throw std::runtime_error("stalling proxy: bad conninfo: " + message);
  }
  std::map<std::string, std::string> set;  // a repeated keyword: the last one, as libpq does
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) set[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  auto value = [&](const char* keyword, const char* otherwise) {
    auto it = set.find(keyword);
    return it == set.end() || it->second.empty() ? std::string(otherwise) : it->second;
  };
  const std::string host = value("host", "localhost");
  const std::string port = value("port", "5432");
  ProxyUpstream upstream;
  if (host.starts_with("/")) {
    upstream.unix_path = host + "/.s.PGSQL." + port;
  } else {
    upstream.host = host;
    upstream.port = static_cast<std::uint16_t>(std::stoi(port));
  }
  return std::make_unique<StallingProxy>(upstream, value("dbname", "postgres"),
                                         value("user", "postgres"));
}

StallingProxy::~StallingProxy() = default;

std::uint16_t StallingProxy::port() const { return impl_->port(); }

std::string StallingProxy::conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(port()) + " user=" + user_ + " dbname=" + dbname_;
}

void StallingProxy::freeze() { impl_->set_frozen(true); }

void StallingProxy::thaw() { impl_->set_frozen(false); }

void StallingProxy::freeze_after(std::string marker, bool also_freeze_all) {
  impl_->set_freeze_marker(std::move(marker), also_freeze_all);
}

std::size_t StallingProxy::connections_accepted() const { return impl_->accepted(); }

}  // namespace callbackd::testing
