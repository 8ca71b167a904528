// An engine on a SQLite store, opened the way an embedder would: the queue on the engine's
// clock, the master key file beside the database unless the options name a key.
#pragma once

#include <callbackd/engine.h>
#include <callbackd/sqlite_store.h>

#include <filesystem>

namespace callbackd::testing {

inline Result<std::unique_ptr<Engine>> open_sqlite_engine(const std::filesystem::path& database,
                                                          EngineOptions options) {
  Result<std::unique_ptr<Queue>> queue =
      open_sqlite_queue({.path = database, .clock = options.clock});
  if (!queue.ok()) return queue.status();
  options.queue = std::move(*queue);
  if (options.master_key.empty() && options.master_key_file.empty()) {
    options.master_key_file = database.string() + ".key";
  }
  return Engine::open(std::move(options));
}

}  // namespace callbackd::testing
