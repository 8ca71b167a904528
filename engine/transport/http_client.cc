// libcurl multi on Boost.Asio through the multi_socket API. curl says which sockets to wait on
// (SOCKETFUNCTION) and when it next needs a tick (TIMERFUNCTION); Asio waits, and tells curl
// with curl_multi_socket_action (the waits themselves: socket_watches.h). Sockets for
// connections are opened and closed by us (OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION), which is
// where the network guard looks at the address actually connected to, and which keeps each
// socket object alive exactly as long as curl uses it.
#include "transport/http_client.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <new>
#include <unordered_map>

#include "transport/socket_watches.h"

namespace callbackd {

namespace asio = boost::asio;

namespace {

void ensure_curl_initialized() {
  static const CURLcode initialized = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (initialized != CURLE_OK) throw std::bad_alloc();
}

std::optional<asio::ip::address> to_address(const struct sockaddr* address) {
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    return asio::ip::address_v4(ntohl(in->sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    asio::ip::address_v6::bytes_type bytes;
    std::copy(std::begin(in6->sin6_addr.s6_addr), std::end(in6->sin6_addr.s6_addr), bytes.begin());
    return asio::ip::address_v6(bytes, in6->sin6_scope_id);
  }
  return std::nullopt;
}

AttemptError classify(CURLcode code, long http_status, bool every_address_blocked) {
  if (code == CURLE_OK) {
    return http_status >= 200 && http_status < 300 ? AttemptError::kNone : AttemptError::kStatus;
  }
  // Blocked only when the guard refused every address tried; when one was allowed, the
  // attempt failed for that address's own reason (a timeout, a refused connection...).
  if (every_address_blocked) return AttemptError::kBlocked;
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return AttemptError::kTimeout;
    case CURLE_COULDNT_CONNECT:
      return AttemptError::kRefused;
    case CURLE_COULDNT_RESOLVE_HOST:
      return AttemptError::kDns;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return AttemptError::kReset;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
      return AttemptError::kTls;
    default:
      return AttemptError::kNetwork;
  }
}

// curl calls our callbacks from C: an exception must never unwind through its frames (that is
// undefined behaviour, and whatever curl was doing is left half done). Every callback runs its
// body through this, which turns an exception into the failure value curl expects for that
// callback (failing that one transfer) and one log line.
template <class Body, class Failure>
auto without_exceptions(const char* callback, Failure failure, Body&& body) noexcept
    -> decltype(body()) {
  const char* what = "unknown exception";
  try {
    return body();
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  try {
    spdlog::error("event=curl_callback_failed callback={} error=\"{}\"", callback, what);
  } catch (...) {
  }
  return failure;
}

}  // namespace

class HttpClient::Impl {
 public:
  Impl(asio::io_context& io, HttpClientOptions options);
  ~Impl();

  void post(HttpRequest request, std::function<void(HttpResponse)> done);
  std::size_t in_flight() const { return transfers_.size(); }

 private:
  // One attempt: the easy handle and everything curl points into until the transfer ends.
  struct Transfer {
    Impl* client = nullptr;
    CURL* easy = nullptr;
    HttpRequest request;  // owns the body curl sends from
    std::function<void(HttpResponse)> done;
    curl_slist* headers = nullptr;
    std::string body_head;
    int addresses_blocked = 0;  // addresses the guard refused
    int addresses_allowed = 0;  // addresses a socket was opened for
    bool cap_reached = false;   // stopped reading the body at max_response_bytes
    char error[CURL_ERROR_SIZE] = {0};
  };

  static curl_socket_t open_socket(void* transfer, curlsocktype purpose, curl_sockaddr* address);
  static int close_socket(void* client, curl_socket_t fd);
  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* client, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* client);
  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* transfer);
  // What the callbacks above do; they may throw, the callbacks never do.
  // `unowned` is set to a socket made but not owned by a watch yet, for cleanup on a throw.
  static curl_socket_t open_watched_socket(void* transfer, curlsocktype purpose,
                                           curl_sockaddr* address, int& unowned);
  static int set_timer(CURLM* multi, long timeout_ms, void* client);
  static std::size_t keep_body_head(char* data, std::size_t size, std::size_t count,
                                    void* transfer);

  void arm_timer(std::chrono::steady_clock::time_point at);
  void act(curl_socket_t fd, int events);
  void collect_finished();
  CURL* take_easy();
  void configure_fixed(CURL* easy);
  void configure(Transfer& t);

  asio::io_context& io_;
  const HttpClientOptions options_;
  CURLM* multi_ = nullptr;
  asio::steady_timer timer_;
  bool timer_armed_ = false;
  std::uint64_t timer_generation_ = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline_;  // when curl wants a tick
  bool tick_posted_ = false;
  std::shared_ptr<char> alive_ = std::make_shared<char>();  // posted work checks it first
  SocketWatches watches_;  // closes cached connections' sockets: outlives multi_ (see ~Impl)
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> transfers_;
  std::vector<CURL*> idle_easies_;  // handles kept for reuse, fixed options already set
  curl_slist* resolve_ = nullptr;   // options_.resolve, shared by every handle
};

HttpClient::Impl::Impl(asio::io_context& io, HttpClientOptions options)
    : io_(io),
      options_(std::move(options)),
      timer_(io),
      watches_(io, [this](int fd, int events) { act(fd, events); }) {
  ensure_curl_initialized();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw std::bad_alloc();
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(options_.connection_cache_size));
  for (const std::string& entry : options_.resolve) {
    resolve_ = curl_slist_append(resolve_, entry.c_str());
  }
}

HttpClient::Impl::~Impl() {
  // Abort what is running without calling its handlers.
  for (auto& [easy, transfer] : transfers_) {
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
    curl_slist_free_all(transfer->headers);
  }
  transfers_.clear();
  for (CURL* easy : idle_easies_) curl_easy_cleanup(easy);
  // Closes cached connections through close_socket(), so the watches must still be here.
  curl_multi_cleanup(multi_);
  timer_.cancel();
  curl_slist_free_all(resolve_);
}

CURL* HttpClient::Impl::take_easy() {
  if (!idle_easies_.empty()) {
    CURL* easy = idle_easies_.back();
    idle_easies_.pop_back();
    return easy;
  }
  CURL* easy = curl_easy_init();
  if (easy != nullptr) configure_fixed(easy);
  return easy;
}

// Options every transfer shares, set once per handle: handles are reused without a reset.
void HttpClient::Impl::configure_fixed(CURL* e) {
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  // No proxy from the environment: the guard must judge the address really connected to.
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_bundle_path.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_bundle_path.c_str());
  }
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_body);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Impl::open_socket);
  // A cached connection may be closed during another transfer: close_socket() gets the
  // client, which outlives every transfer, never the transfer.
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &Impl::close_socket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
  if (resolve_ != nullptr) curl_easy_setopt(e, CURLOPT_RESOLVE, resolve_);
}

// Options of this transfer: each one is set on every use of the handle, so nothing of the
// previous transfer (body, headers, buffers) is left pointing anywhere.
void HttpClient::Impl::configure(Transfer& t) {
  CURL* e = t.easy;
  t.headers = curl_slist_append(t.headers, "Content-Type: application/json");
  t.headers = curl_slist_append(t.headers, "Expect:");  // no 100-continue round trip
  for (const std::string& header : t.request.headers) {
    t.headers = curl_slist_append(t.headers, header.c_str());
  }
  const std::string& body = *t.request.body;
  curl_easy_setopt(e, CURLOPT_URL, t.request.url.c_str());
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
  // curl reads 0 as "no timeout": every attempt has a bound, so 1 ms at the least.
  const long timeout_ms = std::max<long>(1, static_cast<long>(t.request.timeout.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
}

void HttpClient::Impl::post(HttpRequest request, std::function<void(HttpResponse)> done) {
  CURL* easy = take_easy();
  if (easy == nullptr) throw std::bad_alloc();
  auto transfer = std::make_unique<Transfer>();
  transfer->client = this;
  transfer->easy = easy;
  transfer->request = std::move(request);
  transfer->done = std::move(done);
  if (!transfer->request.body) transfer->request.body = std::make_shared<const std::string>();
  configure(*transfer);
  const CURLMcode added = curl_multi_add_handle(multi_, easy);
  if (added != CURLM_OK) {
    HttpResponse response;
    response.error = AttemptError::kNetwork;
    response.error_detail = curl_multi_strerror(added);
    curl_slist_free_all(transfer->headers);
    curl_easy_cleanup(easy);
    asio::post(io_, [done = std::move(transfer->done), response = std::move(response)]() mutable {
      done(std::move(response));
    });
    return;
  }
  transfers_.emplace(easy, std::move(transfer));
}

curl_socket_t HttpClient::Impl::open_socket(void* transfer_ptr, curlsocktype purpose,
                                            curl_sockaddr* address) {
  int unowned = -1;  // a socket made but not yet owned by its watch
  return without_exceptions("opensocket", CURL_SOCKET_BAD, [&]() -> curl_socket_t {
    try {
      return open_watched_socket(transfer_ptr, purpose, address, unowned);
    } catch (...) {
      if (unowned >= 0) ::close(unowned);  // never handed to curl: ours to close
      throw;
    }
  });
}

curl_socket_t HttpClient::Impl::open_watched_socket(void* transfer_ptr, curlsocktype purpose,
                                                    curl_sockaddr* address, int& unowned) {
  auto* t = static_cast<Transfer*>(transfer_ptr);
  Impl* self = t->client;
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  if (self->options_.allow_address) {
    std::optional<asio::ip::address> target = to_address(&address->addr);
    bool allowed = false;
    try {
      allowed = target && self->options_.allow_address(*target);
    } catch (...) {
      allowed = false;  // an exception must not unwind through curl's C frames: refuse
    }
    if (!allowed) {
      ++t->addresses_blocked;
      return CURL_SOCKET_BAD;
    }
  }
  ++t->addresses_allowed;
  const int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd < 0) return CURL_SOCKET_BAD;
  unowned = fd;
  self->watches_.adopt(fd);
  unowned = -1;  // the watch closes it from here on
  return fd;
}

int HttpClient::Impl::close_socket(void* client, curl_socket_t fd) {
  // Closing twice could close a number reused meanwhile: on failure curl hears of an error and
  // the descriptor stays with its watch, closed with the client.
  return without_exceptions("closesocket", 1,
                            [&] { return static_cast<Impl*>(client)->watches_.close(fd); });
}

int HttpClient::Impl::on_socket(CURL*, curl_socket_t fd, int what, void* client, void*) {
  // -1 makes curl fail the transfers on this socket.
  return without_exceptions("socket", -1,
                            [&] { return static_cast<Impl*>(client)->watches_.want(fd, what); });
}

int HttpClient::Impl::on_timer(CURLM* multi, long timeout_ms, void* client) {
  // -1 makes curl fail the transfers waiting on this timer.
  return without_exceptions("timer", -1, [&] { return set_timer(multi, timeout_ms, client); });
}

int HttpClient::Impl::set_timer(CURLM*, long timeout_ms, void* client) {
  auto* self = static_cast<Impl*>(client);
  // curl moves its deadline on nearly every action. Re-arming the Asio timer costs a
  // timerfd_settime each time, which dominated the profile; so the timer is only moved
  // earlier, and a timer that fires early or needlessly just looks at the wanted deadline.
  if (timeout_ms < 0) {
    self->deadline_.reset();
    return 0;
  }
  if (timeout_ms == 0) {
    // Due now: one post, never a re-entrant call into curl from its own callback.
    self->deadline_.reset();
    if (!self->tick_posted_) {
      self->tick_posted_ = true;
      asio::post(self->io_, [self, alive = std::weak_ptr<char>(self->alive_)] {
        if (alive.expired()) return;  // the client is gone
        self->tick_posted_ = false;
        self->act(CURL_SOCKET_TIMEOUT, 0);
      });
    }
    return 0;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  self->deadline_ = deadline;
  if (!self->timer_armed_ || deadline < self->timer_.expiry()) self->arm_timer(deadline);
  return 0;
}

void HttpClient::Impl::arm_timer(std::chrono::steady_clock::time_point at) {
  timer_armed_ = true;
  timer_.expires_at(at);
  timer_.async_wait([this, generation = ++timer_generation_](const boost::system::error_code& ec) {
    if (ec || generation != timer_generation_) return;  // replaced by an earlier deadline
    timer_armed_ = false;
    if (!deadline_) return;  // curl no longer wants a tick
    if (std::chrono::steady_clock::now() < *deadline_) return arm_timer(*deadline_);
    deadline_.reset();
    act(CURL_SOCKET_TIMEOUT, 0);
  });
}

void HttpClient::Impl::act(curl_socket_t fd, int events) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, events, &running);
  collect_finished();
}

std::size_t HttpClient::Impl::on_body(char* data, std::size_t size, std::size_t count,
                                      void* transfer) {
  // 0 (fewer bytes than given) makes curl fail this transfer with CURLE_WRITE_ERROR.
  return without_exceptions("write", std::size_t{0},
                            [&] { return keep_body_head(data, size, count, transfer); });
}

std::size_t HttpClient::Impl::keep_body_head(char* data, std::size_t size, std::size_t count,
                                             void* transfer) {
  auto* t = static_cast<Transfer*>(transfer);
  const std::size_t bytes = size * count;
  const std::size_t cap = t->client->options_.max_response_bytes;
  const std::size_t room = cap - std::min(cap, t->body_head.size());
  t->body_head.append(data, std::min(room, bytes));
  if (bytes > room) {
    // The status is already known (the body comes after the headers): stop reading here.
    t->cap_reached = true;
    return 0;
  }
  return bytes;
}

void HttpClient::Impl::collect_finished() {
  // Gather first, call handlers after: a handler may post() and re-enter curl.
  std::vector<std::pair<std::function<void(HttpResponse)>, HttpResponse>> finished;
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
    if (message->msg != CURLMSG_DONE) continue;
    CURL* easy = message->easy_handle;
    auto it = transfers_.find(easy);
    if (it == transfers_.end()) continue;
    Transfer& t = *it->second;
    CURLcode code = message->data.result;
    if (code == CURLE_WRITE_ERROR && t.cap_reached) code = CURLE_OK;

    HttpResponse response;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t total_us = 0;
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
    response.http_status = static_cast<int>(status);
    response.error = classify(code, status, t.addresses_blocked > 0 && t.addresses_allowed == 0);
    response.duration = std::chrono::duration_cast<Millis>(std::chrono::microseconds(total_us));
    response.body_head = std::move(t.body_head);
    if (response.error == AttemptError::kBlocked) {
      response.error_detail = "the network guard refused the address";
    } else if (code != CURLE_OK) {
      response.error_detail = t.error[0] != '\0' ? t.error : curl_easy_strerror(code);
    }
    finished.emplace_back(std::move(t.done), std::move(response));

    curl_multi_remove_handle(multi_, easy);
    curl_slist_free_all(t.headers);
    transfers_.erase(it);
    idle_easies_.push_back(easy);
  }
  for (auto& [done, response] : finished) done(std::move(response));
}

HttpClient::HttpClient(asio::io_context& io, HttpClientOptions options)
    : impl_(std::make_unique<Impl>(io, std::move(options))) {}
HttpClient::~HttpClient() = default;

void HttpClient::post(HttpRequest request, std::function<void(HttpResponse)> done) {
  impl_->post(std::move(request), std::move(done));
}

std::size_t HttpClient::in_flight() const { return impl_->in_flight(); }

}  // namespace callbackd
