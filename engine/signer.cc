#include "signer.h"

#include "encoding.h"

namespace callbackd {

Signer::Signer(const AppKey& key) : current_(key.secret) {}

void Signer::add_headers(std::string_view /*delivery_id*/, TimePoint /*now*/, std::string_view body,
                         std::vector<std::string>& headers) {
  headers.push_back("X-Signature: " + hex_encode(current_.mac(body)));
}

}  // namespace callbackd
