// `callbackd serve`: the engine, the HTTP API, signals and shutdown.
#pragma once

#include <callbackd/engine.h>

#include <memory>

#include "config.h"

namespace callbackd {

// The store the configuration names (the SQLite file in data_dir).
Result<std::shared_ptr<Queue>> open_store(const Config& config);

// Engine settings from the daemon's configuration, on `queue`.
EngineOptions engine_options(const Config& config, std::shared_ptr<Queue> queue,
                             std::shared_ptr<EngineObserver> observer);

// Sends spdlog's lines to stderr as "<UTC time> level=<level> event=… key=value".
void set_up_logging(const std::string& level);

// Serves until SIGTERM or SIGINT, then shuts down gracefully: stops claiming at once, stops
// accepting connections and answers what is in progress, lets attempts in flight finish within
// their bound, releases the rest, and returns 0. A second signal exits at once (acknowledged
// callbacks are already on disk). Returns 1 when start-up fails (the reason is logged).
int serve(const Config& config);

}  // namespace callbackd
