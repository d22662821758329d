// Checkpoints: a directory with the model's config, data spec, dense
// weights, embedding rows and all optimizer state, plus a manifest of sizes
// and checksums. Format in docs/checkpoint.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dist/comm.h"
#include "model/model.h"
#include "util/env.h"
#include "util/status.h"

namespace embark {

// Saves write version 2; serving copies with int8 tables (ExportCheckpoint)
// version 3, which older builds refuse by its number.
constexpr int kCheckpointVersion = 2;
constexpr int kCheckpointVersionInt8 = 3;

struct TrainerState {
  int epochs_done = 0;
  int64_t step = 0;
  uint64_t samples = 0;
  double best_auc = 0;
  // Batch training: samples of epoch `epochs_done` already trained on (a
  // checkpoint written mid-epoch resumes there, not at the epoch's start).
  uint64_t epoch_samples = 0;
  // Online training (docs/online.md): where the stream stands after the
  // last trained sample (JSON written by the stream source; empty for batch
  // runs), the last delta checkpoint this state contains, and, in a
  // snapshot, the identity its deltas name as their base.
  std::string stream_position;
  uint64_t delta_seq = 0;
  std::string snapshot_id;
  // The run's history (history.json, docs/report.md): one record per
  // validation or epoch end (per report interval online), oldest first, and
  // the reliability diagram of the last validation. Carried across resumes.
  // Each as JSON text.
  std::vector<std::string> history;
  std::string reliability;  // empty when there is none
  // What the objective keeps across runs (Objective::SaveState: the
  // softmax's item frequencies), objective.bin; empty when nothing.
  std::string objective_state;
};

// history.json's text for `ts`, and the history read back from it (throws
// on a malformed file).
std::string HistoryJson(const TrainerState& ts, const std::string& model);
void HistoryFromJson(const std::string& text, TrainerState* ts);

// trainer.json (docs/checkpoint.md); FromJson throws on a malformed field.
nlohmann::json TrainerStateJson(const TrainerState& ts);
TrainerState TrainerStateFromJson(const nlohmann::json& st);

struct DenseOptState {
  int64_t step = 0;
  std::vector<std::vector<float>> slots;
};

// Writes the checkpoint into a staging directory beside `dir`, fsyncs every
// file and the directory, then swaps it into place atomically. Refuses a
// `dir` that holds anything but an embark checkpoint (fs::CheckReplaceable).
//
// With a communicator of N > 1 ranks (collective; `dir` on a file system
// every rank sees): each rank writes its own rows as embeddings-R-of-N.bin
// (and first_order-R-of-N.bin), rank 0 writes the rest and, once every shard is
// durable, the manifest listing them all, and swaps the directory in. Every
// rank returns the same status.
Status SaveCheckpoint(const std::string& dir, const Model& model, const DenseOptState& opt, const TrainerState& ts,
                      Communicator* comm = nullptr, Env* env = Env::Posix());

struct LoadedCheckpoint {
  std::unique_ptr<Model> model;
  DenseOptState opt;
  TrainerState state;
  // An online training directory (docs/online.md): the deltas applied on
  // top of the snapshot, in order, and why the first one not applied was
  // refused (OK when every delta present was applied).
  uint64_t deltas_applied = 0;
  Status delta_error;
  // The last delta applied: when it was written, and when the newest sample
  // it trained on was read (DeltaInfo; 0 when none was applied).
  double delta_written_unix = 0, delta_newest_sample_unix = 0;
};

// Verifies the manifest, sizes and checksums before reading anything else;
// a truncated or corrupted checkpoint is refused with the reason. Rows of
// every shard file are read; with shard_count > 1 only the rows this rank
// owns (OwnerOf(key, shard_count) == shard_index) are kept, so a checkpoint
// written by N ranks loads into M.
// The rows go into stores made as `storage` says (null: every row in RAM,
// nothing dropped).
Result<LoadedCheckpoint> LoadCheckpoint(const std::string& dir, int shard_index = 0, int shard_count = 1,
                                        Env* env = Env::Posix(), const StorageOptions* storage = nullptr);

// Writes a serving copy of checkpoint `src` into `out` (which must not exist,
// or be an empty directory): the same config (row_precision = "int8"), data
// spec, dense weights and calibration, and every table's weights as int8
// with a per-row fp32 scale and bias (docs/checkpoint.md, version 3); no
// optimizer state. Written like any save: complete or not at all. Loading
// it gives a model whose tables keep int8 rows in RAM and refuse training.
Status ExportCheckpoint(const std::string& src, const std::string& out, RowPrecision precision,
                        Env* env = Env::Posix());

}  // namespace embark
