// embark's public API: everything a program needs to train, score and
// inspect models, in a few headers; nothing under src/ is part of it.
//
//   status.h     Status, Result<T>: every fallible call returns one
//   batch.h      Batch: samples in memory (labels, numeric, sparse CSR)
//   reader.h     BatchReader: files to batches with a model's data spec
//   options.h    TrainOptions: parameters by name, data, resume; ListParams
//   trainer.h    Trainer: Open, Step, Evaluate, Predict, Save, Fit
//   predictor.h  Predictor: a checkpoint's probabilities and metrics
//   checkpoint.h CheckpointInfo, VerifyCheckpoint, ExportCheckpoint
//   metrics.h    Metrics: AUC, logloss, normalized entropy, calibration
#pragma once

#include "embark/batch.h"
#include "embark/checkpoint.h"
#include "embark/metrics.h"
#include "embark/options.h"
#include "embark/predictor.h"
#include "embark/reader.h"
#include "embark/status.h"
#include "embark/trainer.h"

namespace embark {

// The version of the library (also `embark --version`).
const char* Version();

}  // namespace embark
