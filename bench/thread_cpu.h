// CPU time of this process's threads, summed by thread name, from /proc/self/task/*/stat
// (clock ticks: 10 ms on most kernels, so measure runs of a second or more). Benchmarks take a
// snapshot before and after the timed part to say which thread the CPU went to.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace callbackd::bench {

using ThreadCpu = std::map<std::string, double>;  // thread name -> CPU seconds

inline ThreadCpu thread_cpu_seconds() {
  ThreadCpu cpu;
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream stat_file(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
    // "tid (name) state …": the name may hold spaces and parentheses, so fields count from the
    // last ')'. utime and stime are fields 14 and 15, the 12th and 13th after it.
    const auto close = stat.rfind(')');
    const auto open = stat.find('(');
    if (close == std::string::npos || open == std::string::npos) continue;  // the thread ended
    std::istringstream fields(stat.substr(close + 2));
    std::string skipped;
    for (int i = 0; i < 11; ++i) fields >> skipped;
    long long user = 0, system = 0;
    if (!(fields >> user >> system)) continue;
    cpu[stat.substr(open + 1, close - open - 1)] +=
        static_cast<double>(user + system) / ticks_per_second;
  }
  return cpu;
}

// CPU seconds the thread(s) named `name` used between two snapshots.
inline double used_between(const ThreadCpu& before, const ThreadCpu& after,
                           const std::string& name) {
  const auto a = after.find(name);
  const auto b = before.find(name);
  return (a == after.end() ? 0.0 : a->second) - (b == before.end() ? 0.0 : b->second);
}

}  // namespace callbackd::bench
