// Checkpoints are directories (format in docs/checkpoint.md): the model's
// config and data spec, dense weights, embedding rows with their optimizer
// state, trainer counters, and a manifest of sizes and checksums. The CLI
// and every API client read and write the same directories.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "embark/status.h"

namespace embark {

struct TableInfo {
  std::string name;  // "embeddings", "first_order", ...
  int dim = 0;       // floats per row
  uint64_t rows = 0;
  uint64_t memory_bytes = 0;  // held in RAM once loaded (rows, keys, index)
  std::string precision;      // of the rows in RAM: fp32, fp16 or int8
};

struct CheckpointInfo {
  std::string dir;
  std::string model;        // model family: lr, fm, deepfm, wdl, dcnv2, dlrm
  std::string data_format;  // criteo, libsvm, libffm, csv
  int num_fields = 0;       // sparse fields of a sample
  int num_dense = 0;        // numeric fields of a sample
  int outputs = 1;          // values per sample
  int epochs_done = 0;
  int64_t step = 0;
  uint64_t samples = 0;     // trained on
  uint64_t epoch_samples = 0;  // of epoch epochs_done + 1 trained on (a save mid-epoch); --resume goes on from there
  uint64_t dense_params = 0;
  std::vector<TableInfo> tables;
};

// Reads the checkpoint in `dir` and verifies every byte against its manifest;
// the error names the file and what is wrong (missing, truncated, corrupt, a
// newer format). Loads the whole model to do so.
Result<CheckpointInfo> VerifyCheckpoint(const std::string& dir);

// Writes a serving copy of the checkpoint in `dir` into `out` (new, or an
// empty directory; nothing is left there on failure): its embedding rows in
// `row_precision` ("int8": per row int8 weights with an fp32 scale and bias),
// no optimizer state. Predictor and `embark serve` load it and keep its rows
// int8 in memory; training refuses to resume from it.
Status ExportCheckpoint(const std::string& dir, const std::string& out, const std::string& row_precision = "int8");

}  // namespace embark
