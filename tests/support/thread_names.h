// The names of this process's threads as the kernel knows them (/proc/self/task/*/comm): what
// top -H, perf and gdb show an operator.
#pragma once

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace callbackd::testing {

inline std::multiset<std::string> thread_names() {
  std::multiset<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name)) names.insert(name);
  }
  return names;
}

}  // namespace callbackd::testing
