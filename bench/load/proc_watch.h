// Resident memory and open descriptors of a process, from /proc.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace callbackd::load {

struct ProcSample {
  long rss_kib = -1;
  long fds = -1;
};

inline ProcSample sample_process(pid_t pid) {
  ProcSample s;
  const std::string base = "/proc/" + std::to_string(pid);
  std::ifstream status(base + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::stol(line.substr(6));
  std::error_code error;
  long fds = 0;
  for (std::filesystem::directory_iterator it(base + "/fd", error), end; !error && it != end;
       it.increment(error))
    ++fds;
  if (!error) s.fds = fds;
  return s;
}

}  // namespace callbackd::load
