// Delta checkpoints of online training (format in docs/checkpoint.md,
// behaviour in docs/online.md). An online model directory is a checkpoint
// (the snapshot) with a `deltas/` folder beside its files:
//
//   DIR/MANIFEST.json ...        the last full snapshot; its trainer.json names
//                                its snapshot_id and the last delta it holds
//   DIR/deltas/000000000042/     delta 42: the rows trained since delta 41,
//                                the dense weights and optimizer state, the
//                                trainer counters and the stream position
//
// A delta is written into a staging folder and renamed into place, so a
// reader sees it whole or not at all; every file is listed in its manifest
// with size and checksum. Deltas apply in sequence on the snapshot whose id
// they name; a new snapshot replaces the directory and with it every delta
// it folds in.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "model/model.h"
#include "util/env.h"
#include "util/status.h"

namespace embark {

// The deltas folder of an online model directory, and a delta's folder.
std::string DeltasDir(const std::string& dir);
std::string DeltaDir(const std::string& dir, uint64_t seq);

struct DeltaInfo {
  uint64_t seq = 0;          // 1, 2, ... over the life of the model
  std::string base;          // snapshot_id of the snapshot it applies to
  double written_unix = 0;   // wall-clock time it was written
  // Wall-clock time the newest sample it trained on was read from the
  // stream (0 when unknown): serving reports freshness from it.
  double newest_sample_unix = 0;
  uint64_t rows = 0;         // over all tables
  TrainerState state;        // counters and stream position after its last step
};

// Writes delta info.seq of `dir`: for table t, the rows of keys[t] as the
// model's stores hold them now (weights, optimizer state and metadata;
// keys a store no longer holds are skipped), the dense weights and `opt`,
// and info.state. Complete or absent: staged, synced, renamed into place.
// Returns the bytes written.
Result<uint64_t> WriteDelta(const std::string& dir, const Model& model, const std::vector<std::vector<uint64_t>>& keys,
                            const DenseOptState& opt, const DeltaInfo& info, Env* env = Env::Posix());

// The sequence numbers of the complete deltas in `dir`, ascending (none
// when there is no deltas folder).
Result<std::vector<uint64_t>> ListDeltas(const std::string& dir, Env* env = Env::Posix());

// A delta read and verified whole before anything is applied: manifest,
// every file's size and checksum (table files block by block), the dense
// weights' size and the table files' row shapes against `model`. A delta
// that fails any check is Corruption naming the file, and the model is
// untouched.
class Delta {
 public:
  static Result<std::unique_ptr<Delta>> Open(const std::string& dir, uint64_t seq, const Model& model,
                                             Env* env = Env::Posix());
  const DeltaInfo& info() const { return info_; }
  // The model's dense parameters and optimizer state as of this delta.
  const std::vector<float>& dense() const { return dense_; }
  const DenseOptState& dense_opt() const { return opt_; }
  // Puts the delta's rows into the tables of `model` (which Open checked
  // the shapes against), replacing rows held. Safe while other threads read
  // the tables; an I/O error midway leaves some rows applied.
  Status ApplyRows(const Model& model) const;
  // ApplyRows, then the dense parameters into model->params().
  Status Apply(Model* model) const;

 private:
  Delta() = default;
  std::string path_;
  Env* env_ = nullptr;
  DeltaInfo info_;
  std::vector<float> dense_;
  DenseOptState opt_;
  struct TableFile {
    int table = 0;
    std::string path;
  };
  std::vector<TableFile> tables_;
};

// Applies to `ck` (a snapshot just loaded from `dir`) the deltas of `dir`
// that follow it: seq ck->state.delta_seq + 1, + 2, ... while each is
// present, names the snapshot's id as its base and verifies; ck's model,
// optimizer state and trainer state end at the last one applied. The first
// delta refused is reported in ck->delta_error; a gap in the sequence ends
// the run of deltas too. LoadCheckpoint calls this.
Status ApplyDeltas(const std::string& dir, LoadedCheckpoint* ck, Env* env = Env::Posix());

}  // namespace embark
