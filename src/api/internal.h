// What the API's implementation files share: readers over a data spec, the
// shape check every caller-built batch passes, and a model's description.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "data/spec.h"
#include "embark/arrays.h"
#include "embark/checkpoint.h"
#include "embark/reader.h"
#include "model/model.h"

namespace embark::api {

// A BatchReader of `files` parsed with `spec`.
std::unique_ptr<BatchReader> NewReader(const std::vector<std::string>& files, const DataSpec& spec,
                                       const ReadSettings& settings);

// OK when `batch` has the shape `spec` gives samples (fields, numeric
// values, CSR offsets that rise and end at the key count, one value per key,
// finite values, and with `labels` 0/1 labels); else what is wrong, so that
// no caller's batch can make a model read out of bounds.
Status CheckBatch(const Batch& batch, const DataSpec& spec, bool labels);

// Rows [begin, end) of `data` as samples of `spec`, into *batch after
// resetting it (labels when data.labels is set): Trainer::Encode and
// Predictor::Encode.
Status EncodeArrays(const DataSpec& spec, const ArrayData& data, size_t begin, size_t end, Batch* batch);

CheckpointInfo Describe(const Model& model, const TrainerState& state, const std::string& dir);

}  // namespace embark::api
