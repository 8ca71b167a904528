// Where the master key that seals signing secrets comes from.
#pragma once

#include <callbackd/engine.h>
#include <callbackd/queue.h>

#include "secrets/secret_box.h"

namespace callbackd {

// The key for this database: options.master_key, else the key file (created with a fresh
// random key, mode 0600, when the database has never sealed anything). Checks it against the
// key check stored with the data, and stores one for a new database.
// kFailedPrecondition with a message an operator can act on when the key is missing or wrong.
Result<SecretBox> open_secret_box(const EngineOptions& options, Queue& queue);

}  // namespace callbackd
