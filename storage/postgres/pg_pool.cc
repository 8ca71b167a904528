#include "pg_pool.h"

namespace callbackd::postgres {

Result<std::unique_ptr<Pool>> Pool::open(const std::string& conninfo, std::size_t size) {
  auto pool = std::make_unique<Pool>();
  pool->size_ = std::max<std::size_t>(1, size);
  for (std::size_t i = 0; i < pool->size_; ++i) {
    auto c = Connection::open(conninfo);
    if (!c.ok()) return c.status();
    pool->idle_.push_back(std::move(*c));
  }
  return pool;
}

Pool::Lease Pool::borrow() {
  std::unique_lock lock(mutex_);
  free_.wait(lock, [&] { return !idle_.empty(); });
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
