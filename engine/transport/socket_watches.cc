#include "transport/socket_watches.h"

#include <curl/curl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>

namespace callbackd {

namespace asio = boost::asio;

namespace {

ino_t inode_of(int fd) {
  struct stat info {};
  return ::fstat(fd, &info) == 0 ? info.st_ino : 0;
}

}  // namespace

// curl does not always close through close(): a connect it gives up on (a timeout) is closed
// directly, and the kernel hands the number out again. So each watch remembers which file
// curl's descriptor was (its inode), and a watch found for a number that now names another
// file is stale: it is dropped without closing anything.
struct SocketWatches::Watch {
  asio::posix::stream_descriptor descriptor;
  ino_t inode = 0;  // of curl's descriptor when the watch was made
  int wanted = CURL_POLL_NONE;
  bool reading = false;  // a read wait is outstanding (its handler has not run yet)
  bool writing = false;
  bool adopted = false;  // closed by close(); otherwise `descriptor` is our duplicate
  Watch(asio::io_context& io, int fd) : descriptor(io, fd) {}
};

SocketWatches::SocketWatches(asio::io_context& io, OnReady on_ready)
    : io_(io), on_ready_(std::move(on_ready)) {}

SocketWatches::~SocketWatches() {
  for (auto& [fd, watch] : watches_) {
    boost::system::error_code ignored;
    watch->descriptor.cancel(ignored);
    watch->descriptor.close(ignored);
  }
}

void SocketWatches::adopt(int fd) {
  live_watch(fd);  // a watch left for this number belonged to a closed socket
  std::shared_ptr<Watch>& slot = watches_[fd];
  try {
    slot = std::make_shared<Watch>(io_, fd);
  } catch (...) {
    watches_.erase(fd);  // the descriptor was not taken
    throw;
  }
  slot->inode = inode_of(fd);
  slot->adopted = true;
}

SocketWatches::Watches::iterator SocketWatches::live_watch(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end() || it->second->inode == inode_of(fd)) return it;
  Watch& stale = *it->second;
  stale.wanted = CURL_POLL_NONE;
  if (stale.adopted) {
    // curl closed it already: forget the number without closing whatever holds it now.
    (void)stale.descriptor.release();
  } else {
    boost::system::error_code ignored;
    stale.descriptor.close(ignored);  // our duplicate
  }
  watches_.erase(it);
  return watches_.end();
}

int SocketWatches::close(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end() || !it->second->adopted) return ::close(fd);
  // Cancel waits first: their handlers see operation_aborted and a gone watch.
  it->second->wanted = CURL_POLL_NONE;
  boost::system::error_code ignored;
  it->second->descriptor.cancel(ignored);
  it->second->descriptor.close(ignored);
  watches_.erase(it);
  return 0;
}

int SocketWatches::want(int fd, int what) {
  auto it = live_watch(fd);
  if (what == CURL_POLL_REMOVE) {
    if (it == watches_.end()) return 0;
    boost::system::error_code ignored;
    it->second->descriptor.cancel(ignored);
    it->second->wanted = CURL_POLL_NONE;
    if (!it->second->adopted) {
      it->second->descriptor.close(ignored);  // our duplicate
      watches_.erase(it);
    }
    return 0;
  }
  if (it == watches_.end()) {
    const int copy = ::dup(fd);
    if (copy < 0) return -1;
    std::shared_ptr<Watch> watch;
    try {
      watch = std::make_shared<Watch>(io_, copy);
    } catch (...) {
      ::close(copy);
      throw;
    }
    watch->inode = inode_of(fd);
    it = watches_.emplace(fd, std::move(watch)).first;
  }
  std::shared_ptr<Watch> watch = it->second;
  watch->wanted = what;
  // A direction whose wait is still outstanding (even one cancelled by a REMOVE whose handler
  // has not run yet) is not waited on twice; that handler renews the wait if still wanted.
  if ((what & CURL_POLL_IN) && !watch->reading) wait(fd, watch, false);
  if ((what & CURL_POLL_OUT) && !watch->writing) wait(fd, watch, true);
  return 0;
}

void SocketWatches::wait(int fd, const std::shared_ptr<Watch>& watch, bool for_write) {
  (for_write ? watch->writing : watch->reading) = true;
  const auto direction = for_write ? asio::posix::descriptor_base::wait_write
                                   : asio::posix::descriptor_base::wait_read;
  watch->descriptor.async_wait(direction, [this, fd, weak = std::weak_ptr<Watch>(watch),
                                           for_write](const boost::system::error_code& ec) {
    std::shared_ptr<Watch> watch = weak.lock();
    if (!watch) return;  // curl closed the socket meanwhile (or we are gone)
    (for_write ? watch->writing : watch->reading) = false;
    const int wanted_bit = for_write ? CURL_POLL_OUT : CURL_POLL_IN;
    if (!(watch->wanted & wanted_bit)) return;  // curl no longer cares
    if (ec == asio::error::operation_aborted) {
      // A REMOVE cancelled this wait, and curl asked for the direction again before this
      // handler ran (a kept-alive connection taken by the next transfer). want() saw this wait
      // outstanding and did not start another, so without this one the answer would sit
      // unread until the attempt's bound.
      wait(fd, watch, for_write);
      return;
    }
    int events = for_write ? CURL_CSELECT_OUT : CURL_CSELECT_IN;
    if (ec) events |= CURL_CSELECT_ERR;
    on_ready_(fd, events);
    // curl may have changed or dropped its interest (or closed the socket) meanwhile.
    if (auto still = weak.lock();
        still && (still->wanted & wanted_bit) && !(for_write ? still->writing : still->reading)) {
      wait(fd, still, for_write);
    }
  });
}

}  // namespace callbackd
