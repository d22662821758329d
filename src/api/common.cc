#include <cmath>

#include "api/internal.h"
#include "data/arrays.h"
#include "data/pipeline.h"
#include "embark/embark.h"

namespace embark {

const char* Version() { return "0.1.0"; }

namespace api {
namespace {

class StreamReader final : public BatchReader {
 public:
  explicit StreamReader(std::unique_ptr<BatchStream> s) : s_(std::move(s)) {}
  Result<bool> Next(Batch* batch) override { return s_->Next(batch); }
  int64_t bad_lines() const override { return s_->bad_lines().count; }
  std::vector<std::string> bad_line_examples() const override { return s_->bad_lines().examples; }

 private:
  std::unique_ptr<BatchStream> s_;
};

}  // namespace

std::unique_ptr<BatchReader> NewReader(const std::vector<std::string>& files, const DataSpec& spec,
                                       const ReadSettings& settings) {
  ReadOptions ro;
  ro.max_bad_lines = settings.max_bad_lines;
  ro.parse_threads = std::max(1, settings.parse_threads);
  StreamOptions so;
  so.batch_size = static_cast<size_t>(std::max(1, settings.batch_size));
  so.shuffle_window = static_cast<size_t>(std::max<int64_t>(0, settings.shuffle_window));
  so.seed = settings.seed;
  return std::make_unique<StreamReader>(OpenStream(files, spec, ro, so));
}

Status CheckBatch(const Batch& b, const DataSpec& spec, bool labels) {
  auto bad = [](const std::string& what) { return Status::InvalidArgument("batch: " + what); };
  if (b.num_fields != spec.num_fields || b.num_dense != spec.num_dense)
    return bad("has " + std::to_string(b.num_fields) + " sparse field(s) and " + std::to_string(b.num_dense) +
               " numeric; the model reads " + std::to_string(spec.num_fields) + " and " +
               std::to_string(spec.num_dense));
  const size_t n = b.size(), F = static_cast<size_t>(b.num_fields);
  if (b.dense.size() != n * static_cast<size_t>(b.num_dense))
    return bad("dense has " + std::to_string(b.dense.size()) + " values for " + std::to_string(n) + " samples");
  if (b.offsets.size() != n * F + 1)
    return bad("offsets has " + std::to_string(b.offsets.size()) + " entries; " + std::to_string(n) +
               " samples of " + std::to_string(F) + " fields need " + std::to_string(n * F + 1));
  if (b.offsets.front() != 0 || b.offsets.back() != b.keys.size())
    return bad("offsets must start at 0 and end at the number of keys (" + std::to_string(b.keys.size()) + ")");
  for (size_t i = 1; i < b.offsets.size(); ++i)
    if (b.offsets[i] < b.offsets[i - 1]) return bad("offsets fall at entry " + std::to_string(i));
  if (b.values.size() != b.keys.size())
    return bad("values has " + std::to_string(b.values.size()) + " entries for " + std::to_string(b.keys.size()) +
               " keys");
  for (size_t i = 0; labels && i < n; ++i)
    if (b.labels[i] != 0.0f && b.labels[i] != 1.0f)
      return bad("label of sample " + std::to_string(i) + " is not 0 or 1");
  for (float v : b.values)
    if (!std::isfinite(v)) return bad("a feature value is not finite");
  for (float v : b.dense)
    if (!std::isfinite(v)) return bad("a numeric value is not finite");
  return Status::OK();
}

Status EncodeArrays(const DataSpec& spec, const ArrayData& data, size_t begin, size_t end, Batch* batch) {
  EMBARK_ASSIGN_OR_RETURN(auto enc, ArrayEncoder::Make(spec, data, data.labels != nullptr));
  batch->Reset(spec.num_dense, spec.num_fields);
  return enc->Append(begin, end, batch);
}

CheckpointInfo Describe(const Model& model, const TrainerState& state, const std::string& dir) {
  CheckpointInfo info;
  info.dir = dir;
  info.model = model.config().model;
  info.data_format = FormatName(model.spec().format);
  info.num_fields = model.spec().num_fields;
  info.num_dense = model.spec().num_dense;
  info.outputs = model.outputs();
  info.epochs_done = state.epochs_done;
  info.step = state.step;
  info.samples = state.samples;
  info.epoch_samples = state.epoch_samples;
  info.dense_params = model.params().size();
  for (int t = 0; t < model.num_tables(); ++t) {
    const RowStore* s = model.table(t);
    const StoreStats st = s->stats();
    const RowPrecision p = s->config().precision;
    info.tables.push_back({s->config().name, s->dim(), st.rows, st.memory_bytes,
                           p == RowPrecision::kInt8 ? "int8" : p == RowPrecision::kFp16 ? "fp16" : "fp32"});
  }
  return info;
}

}  // namespace api

Result<CheckpointInfo> VerifyCheckpoint(const std::string& dir) {
  EMBARK_ASSIGN_OR_RETURN(LoadedCheckpoint ck, LoadCheckpoint(dir));
  return api::Describe(*ck.model, ck.state, dir);
}

Status ExportCheckpoint(const std::string& dir, const std::string& out, const std::string& row_precision) {
  if (row_precision != "int8")
    return Status::InvalidArgument("--row-precision: export writes 'int8' rows, not '" + row_precision + "'");
  return embark::ExportCheckpoint(dir, out, RowPrecision::kInt8);
}

Status TrainOptions::Set(const std::string& name, const std::string& value) {
  if (FindParam(name) == nullptr) return Status::InvalidArgument("unknown parameter '" + name + "' (embark params lists them)");
  values_.emplace_back(name, value);
  return Status::OK();
}

std::vector<ParamInfo> ListParams() {
  std::vector<ParamInfo> out;
  const TrainConfig def;
  for (const ParamDef& p : TrainParams()) {
    out.push_back({p.name, FlagName(p.name), p.type, p.group, p.get(def), p.help, p.on_resume == OnResume::kFixed, {}});
    for (const auto& alias : ParamAliases())
      if (std::string(alias.name) == p.name) out.back().former_names.push_back(alias.old_name);
  }
  return out;
}

}  // namespace embark
