// The callbackd command line: `serve`, and the operator commands that call a running daemon.
#pragma once

namespace callbackd {

// Runs the command named by argv and returns the process exit code: 0 success, 1 failure
// (reason on stderr), 2 bad usage.
int run_cli(int argc, char** argv);

}  // namespace callbackd
