// A fixed set of connections shared by the queue's callers; a caller borrows one for a call,
// and waits a bounded time for one when all are busy.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "pg_connection.h"

namespace callbackd::postgres {

class Pool {
 public:
  class Lease {
   public:
    Lease(Pool& pool, std::unique_ptr<Connection> c) : pool_(&pool), connection_(std::move(c)) {}
    ~Lease() {
      if (connection_) pool_->give_back(std::move(connection_));
    }
    Lease(Lease&&) = default;
    Connection& operator*() { return *connection_; }
    Connection* operator->() { return connection_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> connection_;
  };

  // `size` connections with `bounds`. borrow() waits `borrow_timeout` at most (default:
  // bounds.statement_timeout, so a caller behind busy connections waits about as long as one
  // statement may take; zero: no bound).
  static Result<std::unique_ptr<Pool>> open(const std::string& conninfo, std::size_t size,
                                            const PostgresLinkBounds& bounds = {},
                                            std::optional<Millis> borrow_timeout = std::nullopt);
  // A free connection, or kStorageUnavailable "postgres: no free connection within …" when
  // none came free in time (every one busy, e.g. each waiting on a frozen database).
  Result<Lease> borrow();
  std::size_t size() const { return size_; }
  std::size_t in_use() const;

 private:
  void give_back(std::unique_ptr<Connection> c);

  std::size_t size_ = 0;
  Millis borrow_timeout_{0};
  mutable std::mutex mutex_;
  std::condition_variable free_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace callbackd::postgres
