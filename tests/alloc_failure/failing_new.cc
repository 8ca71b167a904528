// A replaced global operator new that can be told to fail the next allocation of the calling
// thread, to reach the failure paths of code that is otherwise never short of memory. Linked
// only into the binary of its own tests.
#include "failing_new.h"

#include <cstdlib>
#include <new>

namespace callbackd::testing {
namespace {
thread_local bool fail_next = false;
}  // namespace

void fail_next_allocation_on_this_thread() { fail_next = true; }

}  // namespace callbackd::testing

namespace {

void* allocate(std::size_t size) {
  if (callbackd::testing::fail_next) {
    callbackd::testing::fail_next = false;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
