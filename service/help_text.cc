#include "help_text.h"

#include <algorithm>
#include <vector>

#include "build_info.h"
#include "config.h"

namespace callbackd {
namespace {

constexpr const char* kBeforeOptions = R"(NAME
    callbackd - reliable, signed callback (webhook) delivery

SYNOPSIS
    callbackd serve [--config FILE] [--KEY VALUE ...]
    callbackd COMMAND [ARGUMENTS] [--config FILE] [--KEY VALUE ...]
    callbackd --help | --version

DESCRIPTION
    callbackd takes a finished task's result from a pipeline, stores it durably, and POSTs it
    to the customer's callback_url with an HMAC-SHA256 X-Signature header. Every attempt is
    bounded by attempt_timeout; failed attempts are retried on retry_schedule; a callback it
    has acknowledged survives crashes and restarts. After the last retry a delivery is dead
    until it is redelivered.

    `serve` runs the daemon: an HTTP API on `listen` (JSON under /v1, plus /metrics, /healthz
    and /readyz) and the dispatcher. The other commands are its command-line client: they reach
    the daemon at `listen` with `api_token`, read from the same configuration as `serve`.

COMMANDS
    serve
        Run the daemon until SIGTERM or SIGINT; then stop accepting, let attempts in flight
        finish, and exit 0.
    apps create --name NAME [--scheme hex|standard]
        Create an app; prints its signing secret, which is shown only this once.
    apps rotate-secret APP_ID
        Replace an app's signing secret.
    send [FILE]
        Enqueue a callback from a JSON file, or from standard input without FILE or with -.
    deliveries list [--state S] [--app-id A] [--task-id T] [--limit N] [--cursor C]
        List deliveries, oldest first, one page at a time.
    deliveries show DELIVERY_ID
        A delivery with every attempt and the time of the next one.
    deliveries redeliver DELIVERY_ID
        Send a delivered or dead callback again, with a fresh retry budget.
    deliveries redeliver [--state dead|delivered] [--since AGE] [--until AGE] [--app APP_ID]
                         [--limit N]
        Send again every dead (or delivered) callback that finished between --since and
        --until ago (durations like 2h and 30m, or RFC 3339 times), in batches of up to 1000;
        --limit caps the total. Prints how many were queued.
    probe healthz|readyz
        Exit 0 when the daemon answers 200 (for container and systemd probes).
    store copy
        Copy the SQLite store in data_dir, whole, into the empty PostgreSQL database named by
        `store`. Stop the daemon first and keep the same master key.
    verify --secret S --signature HEX [FILE]
        Check an X-Signature against a body (FILE or standard input): exit 0 when it
        matches, 1 when it does not.
    help
        This text.

OPTIONS
    --help, -h
        Print this text and exit 0.
    --version
        Print the version and exit 0.
    --config FILE
        A TOML file with any of the keys below. Precedence, lowest first: the file, then
        CALLBACKD_<KEY> environment variables, then --key-with-dashes flags. Unknown keys and
        bad values stop the command with a message naming them. Durations take units (250ms,
        30s, 5m, 2h, 7d); sizes take KiB and MiB; lists are comma-separated on the command line.

    Configuration keys, as flags (the TOML key has underscores instead of dashes):
)";

constexpr const char* kAfterOptions = R"(
ENVIRONMENT
    CALLBACKD_<KEY>
        Any configuration key in upper case, e.g. CALLBACKD_LISTEN, CALLBACKD_API_TOKEN,
        CALLBACKD_STORE. Keep secrets (the API token, a PostgreSQL password) here or in
        /etc/callbackd/env rather than in the TOML file or on the command line.
    CALLBACKD_MASTER_KEY
        The 32-byte key (64 hex digits) signing secrets are sealed under; overrides
        master_key_file. Read once at start and never logged.
    PGPASSWORD, PGPASSFILE and the other libpq variables
        Used when `store` names a PostgreSQL database.

FILES
    /etc/callbackd/callbackd.toml
        The configuration the packaged systemd unit passes with --config.
    /etc/callbackd/env
        Optional environment file of the systemd unit, for secrets (mode 0600).
    DATA_DIR/callbackd.db, DATA_DIR/callbackd.db-wal, DATA_DIR/callbackd.db-shm
        The SQLite store (data_dir; /var/lib/callbackd under the packaged unit).
    DATA_DIR/callbackd.db.lock
        Held while a process has the store open; a second one refuses to start.
    DATA_DIR/callbackd.db.key
        The master key, created on first start, unless master_key_file or
        CALLBACKD_MASTER_KEY says otherwise. Back it up: without it the secrets are lost.

EXIT STATUS
    0   Success: the daemon stopped cleanly, the API call succeeded, the signature matched.
    1   Failure: the daemon could not start (store, key, address) or failed; the API answered
        with an error or could not be reached; the signature did not match.
    2   Usage or configuration error: unknown command, option or key, or a bad value.

SEE ALSO
    README.md (installed in /usr/share/doc/callbackd/), the HTTP API there, and
    deploy/callbackd.service.
)";

// `text` then `tail` (never split) as lines of at most 96 columns, each starting with `indent`,
// broken at spaces.
std::string wrap(const std::string& text, const std::string& tail, const std::string& indent) {
  std::vector<std::string> words;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t end = std::min(text.find(' ', start), text.size());
    words.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  words.push_back(tail);
  std::string out;
  std::string line = indent;
  for (const std::string& word : words) {
    if (line.size() > indent.size() && line.size() + 1 + word.size() > 96) {
      out += line + "\n";
      line = indent;
    }
    line += (line.size() > indent.size() ? " " : "") + word;
  }
  return out + line + "\n";
}

}  // namespace

std::string help_text() {
  std::string text = kBeforeOptions;
  for (const ConfigKeyInfo& key : config_key_infos()) {
    std::string flag = "    --" + key.name;
    for (char& c : flag) c = c == '_' ? '-' : c;
    text += flag + " VALUE\n" + wrap(key.help, "(default: " + key.default_text + ")", "        ");
  }
  text += kAfterOptions;
  text += "\nVERSION\n    " + version_text() + "\n";
  return text;
}

std::string version_text() {
  std::string text = "callbackd " CALLBACKD_VERSION;
  const std::string describe = CALLBACKD_GIT_DESCRIBE;
  if (!describe.empty()) text += " (" + describe + ")";
  return text;
}

}  // namespace callbackd
