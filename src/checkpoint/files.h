// Pieces of the checkpoint format shared by full checkpoints (checkpoint.cc)
// and delta checkpoints (delta.cc): the dense file, checksums as manifest
// text, and reading a small file against its manifest entry.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "checkpoint/checkpoint.h"
#include "model/model.h"
#include "util/env.h"
#include "util/status.h"

namespace embark {

// dense.bin: the model's dense parameters and the dense optimizer's state.
std::string EncodeDense(const Model& m, const DenseOptState& opt);
// Reads dense.bin's bytes into out[params] and *opt; Corruption naming
// `path` when the size is not `params` or the bytes are short.
Status DecodeDense(std::string_view data, const std::string& path, size_t params, float* out, DenseOptState* opt);

// A manifest's checksum text: XXH64 as 16 hex digits.
std::string Hex(uint64_t v);

struct FileEntry {
  uint64_t bytes = 0;
  std::string xxh64;
};

// A file whose size is not its manifest entry's.
Status SizeMismatch(const std::string& path, uint64_t size, uint64_t listed);

// Reads a small file whole and checks it against its manifest entry; the
// caller parses exactly these bytes.
Result<std::string> ReadVerified(Env* env, const std::string& path, const FileEntry& e);

}  // namespace embark
