// What `callbackd --help` and `callbackd --version` print.
#pragma once

#include <string>

namespace callbackd {

// A manual page in plain text: NAME, SYNOPSIS, DESCRIPTION, COMMANDS, OPTIONS (every
// configuration key with its default), ENVIRONMENT, FILES, EXIT STATUS.
std::string help_text();

// "callbackd 0.1.0" and, when the build knew it, the git description in parentheses.
std::string version_text();

}  // namespace callbackd
