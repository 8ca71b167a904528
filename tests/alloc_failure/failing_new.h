// Allocation failure on demand (see failing_new.cc).
#pragma once

namespace callbackd::testing {

// The calling thread's next operator new throws std::bad_alloc; later ones succeed.
void fail_next_allocation_on_this_thread();

}  // namespace callbackd::testing
