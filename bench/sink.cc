// A loopback HTTP sink answering 204, for comparing callbackd with other senders on the same
// receiver: prints its URL, then serves until stdin closes and prints how many it got.
//   build/release/bench/callbackd_sink
#include <cstdio>
#include <iostream>
#include <string>

#include "receiver.h"

int main() {
  callbackd::testing::Receiver sink({}, /*record=*/false);
  std::printf("%s\n", sink.url().c_str());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  std::printf("received=%zu\n", sink.count());
  return 0;
}
