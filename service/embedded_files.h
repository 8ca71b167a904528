// Files compiled into the binary by cmake/EmbedFiles.cmake (the web console, the OpenAPI
// document): served without a data directory or a network fetch.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace callbackd {

struct EmbeddedFile {
  std::string_view path;  // relative to the embedding's BASE, e.g. "index.html"
  const unsigned char* data;
  std::size_t size;

  std::string_view bytes() const { return {reinterpret_cast<const char*>(data), size}; }
};

// The file named `path` in `files`, or nullptr.
inline const EmbeddedFile* find_embedded_file(std::span<const EmbeddedFile> files,
                                              std::string_view path) {
  for (const EmbeddedFile& file : files) {
    if (file.path == path) return &file;
  }
  return nullptr;
}

}  // namespace callbackd
