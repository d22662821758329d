// Pieces of the checkpoint format shared by full checkpoints (checkpoint.cc)
// and delta checkpoints (delta.cc): the dense file, checksums as manifest
// text, and reading a small file against its manifest entry.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

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

// A manifest's entry for a file of `bytes` bytes whose XXH64 is `sum`.
nlohmann::json ManifestEntry(uint64_t bytes, uint64_t sum);

// Checks that every file a manifest lists is in `dir` with its listed size
// and a plain name (no '/', no ".."), before anything is parsed; `what`
// ("checkpoint", "delta") names the directory in the error.
Status CheckListedFiles(Env* env, const std::string& dir, const std::map<std::string, FileEntry>& files,
                        const char* what);

// A file whose size is not its manifest entry's.
Status SizeMismatch(const std::string& path, uint64_t size, uint64_t listed);

// Reads a small file whole and checks it against its manifest entry; the
// caller parses exactly these bytes.
Result<std::string> ReadVerified(Env* env, const std::string& path, const FileEntry& e);

}  // namespace embark
