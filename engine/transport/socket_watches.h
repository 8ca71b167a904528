// The descriptors libcurl's multi_socket API asks us to wait on (its SOCKETFUNCTION), waited on
// with Boost.Asio. curl says per descriptor which directions it wants, or none; each wanted
// direction has one Asio wait outstanding, and readiness is reported as curl's CURL_CSELECT_*
// bits, for curl_multi_socket_action.
//
// Sockets the client opens for curl (adopt) are watched through their own descriptor and
// closed by close(), curl's CLOSESOCKETFUNCTION. Any other descriptor curl names (the
// resolver's wake-up pipe) is watched through a duplicate, closed when curl stops caring, so
// curl's own close never races our waits.
//
// Not thread-safe: use it on the io_context's thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <unordered_map>

namespace callbackd {

class SocketWatches {
 public:
  // Called with the descriptor and CURL_CSELECT_IN / _OUT (| _ERR); may call back into this
  // object (want, close) before it returns.
  using OnReady = std::function<void(int fd, int events)>;

  SocketWatches(boost::asio::io_context& io, OnReady on_ready);
  ~SocketWatches();  // cancels every wait; closes adopted sockets and duplicates
  SocketWatches(const SocketWatches&) = delete;
  SocketWatches& operator=(const SocketWatches&) = delete;

  // Takes a socket just opened for curl. On a throw the socket is still the caller's to close.
  void adopt(int fd);
  // curl's CLOSESOCKETFUNCTION: closes the socket and drops its watch. Returns close()'s
  // result; a descriptor not adopted is just closed.
  int close(int fd);
  // curl's SOCKETFUNCTION: `what` is CURL_POLL_IN, _OUT, _INOUT or _REMOVE. Returns 0, or -1
  // when a descriptor not adopted could not be duplicated.
  int want(int fd, int what);

 private:
  struct Watch;
  using Watches = std::unordered_map<int, std::shared_ptr<Watch>>;

  void wait(int fd, const std::shared_ptr<Watch>& watch, bool for_write);
  // The watch for `fd`, after dropping one that belongs to a file curl has since closed.
  Watches::iterator live_watch(int fd);

  boost::asio::io_context& io_;
  OnReady on_ready_;
  Watches watches_;
};

}  // namespace callbackd
