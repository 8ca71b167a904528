// A damaged store must not start: it would acknowledge new callbacks into a file that cannot
// keep them, and fail reads at random.
#pragma once

#include <callbackd/status.h>

#include <string>

#include "sqlite_handle.h"

namespace callbackd::sqlite {

// Runs PRAGMA quick_check (every page and b-tree structure, not index contents; linear in the
// file's size: see README, "Damaged stores"). kFailedPrecondition naming what is damaged and
// what an operator can do about it (restore a backup, or salvage with `sqlite3 .recover`).
Status check_integrity(Connection& connection, const std::string& path);

}  // namespace callbackd::sqlite
