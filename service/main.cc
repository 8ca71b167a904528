// callbackd: the sidecar daemon and its command line.
#include <curl/curl.h>

#include "cli.h"

int main(int argc, char** argv) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const int code = callbackd::run_cli(argc, argv);
  curl_global_cleanup();
  return code;
}
