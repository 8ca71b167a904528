#include "pg_pool.h"

#include <algorithm>

namespace callbackd::postgres {

Result<std::unique_ptr<Pool>> Pool::open(const std::string& conninfo, std::size_t size,
                                         const PostgresLinkBounds& bounds,
                                         std::optional<Millis> borrow_timeout) {
  auto pool = std::make_unique<Pool>();
  pool->size_ = std::max<std::size_t>(1, size);
  pool->borrow_timeout_ = borrow_timeout.value_or(bounds.statement_timeout);
  for (std::size_t i = 0; i < pool->size_; ++i) {
    auto c = Connection::open(conninfo, bounds);
    if (!c.ok()) return c.status();
    pool->idle_.push_back(std::move(*c));
  }
  return pool;
}

Result<Pool::Lease> Pool::borrow() {
  std::unique_lock lock(mutex_);
  auto any_free = [&] { return !idle_.empty(); };
  if (borrow_timeout_ <= Millis(0)) {
    free_.wait(lock, any_free);
  } else if (!free_.wait_for(lock, borrow_timeout_, any_free)) {
    const auto ms = borrow_timeout_.count();
    const std::string within =
        ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
    return Status::StorageUnavailable("postgres: no free connection within " + within + " (all " +
                                      std::to_string(size_) + " busy)");
  }
  auto c = std::move(idle_.back());
  idle_.pop_back();
  return Lease(*this, std::move(c));
}

void Pool::give_back(std::unique_ptr<Connection> c) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(c));
  }
  free_.notify_one();
}

std::size_t Pool::in_use() const {
  std::lock_guard lock(mutex_);
  return size_ - idle_.size();
}

}  // namespace callbackd::postgres
