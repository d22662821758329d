// Writes a checkpoint's weights in the order bench/torch_ctr.py lays out
// its identical PyTorch models, so that the two can be compared on the
// same weights (forward outputs, one step's gradients, swapped halves).
//
//   export_rows [--init] CHECKPOINT TRAIN.tsv OUT_DIR
//
// With --init, the weights the checkpoint's run started from instead (a
// fresh model of its config and seed: dense layers and rows are derived
// from the seed, rows from their keys too), so that PyTorch can train the
// identical model from the identical start.
//
// OUT_DIR/dense.f32 holds the dense parameters in the model's order and
// OUT_DIR/dense.json their names, offsets and sizes; OUT_DIR/table_T.f32
// holds, for table T, field after field, the rows of the field's distinct
// keys in the order they first appear in TRAIN.tsv (torch_ctr.py's
// vocabulary order: row i of its EmbeddingBag is the (i-1)-th id first
// seen), and table_T.json the row count per field. A key the checkpoint
// lacks is written as zeros. OUT_DIR is created; one that exists must be
// empty (nothing of anyone's is overwritten).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "data/pipeline.h"
#include "nn/layers.h"

namespace embark {
namespace {

int Run(bool init, const std::string& ckpt, const std::string& data, const std::string& out) {
  InitBlas();
  std::error_code ec;
  if (std::filesystem::exists(out, ec) && !std::filesystem::is_empty(out, ec)) {
    std::fprintf(stderr, "export_rows: '%s' exists and is not empty: give a new directory\n", out.c_str());
    return 1;
  }
  std::filesystem::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "export_rows: cannot create '%s': %s\n", out.c_str(), ec.message().c_str());
    return 1;
  }
  auto loaded = LoadCheckpoint(ckpt);
  if (!loaded.ok()) {
    std::fprintf(stderr, "export_rows: %s\n", loaded.status().message().c_str());
    return 1;
  }
  std::unique_ptr<Model> fresh;
  if (init) {
    auto created = Model::Create(loaded.value().model->config(), loaded.value().model->spec());
    if (!created.ok()) {
      std::fprintf(stderr, "export_rows: %s\n", created.status().message().c_str());
      return 1;
    }
    fresh = std::move(created).value();
  }
  Model& m = init ? *fresh : *loaded.value().model;
  const DataSpec& spec = m.spec();
  const int F = spec.num_fields;

  // Distinct keys per field in order of first appearance.
  std::vector<std::vector<uint64_t>> order(F);
  std::vector<std::unordered_map<uint64_t, uint32_t>> seen(F);
  auto stream = OpenStream({data}, spec, ReadOptions{}, StreamOptions{});
  Batch b;
  for (;;) {
    auto more = stream->Next(&b);
    if (!more.ok()) {
      std::fprintf(stderr, "export_rows: %s\n", more.status().message().c_str());
      return 1;
    }
    if (!more.value()) break;
    for (size_t s = 0; s < b.size(); ++s)
      for (int f = 0; f < F; ++f)
        for (uint32_t q = b.offsets[s * F + f]; q < b.offsets[s * F + f + 1]; ++q)
          if (seen[f].emplace(b.keys[q], static_cast<uint32_t>(order[f].size())).second)
            order[f].push_back(b.keys[q]);
  }

  const ParamSet& ps = m.params();
  {
    std::ofstream d(out + "/dense.f32", std::ios::binary);
    d.write(reinterpret_cast<const char*>(ps.data()), static_cast<std::streamsize>(ps.size() * sizeof(float)));
    std::ofstream j(out + "/dense.json");
    j << "[";
    for (size_t i = 0; i < ps.entries().size(); ++i) {
      const auto& e = ps.entries()[i];
      j << (i ? ",\n" : "") << "{\"name\": \"" << e.name << "\", \"offset\": " << e.offset << ", \"size\": " << e.size
        << "}";
    }
    j << "]\n";
  }
  for (int t = 0; t < m.num_tables(); ++t) {
    RowStore* store = m.table(t);
    const int dim = store->dim();
    std::ofstream r(out + "/table_" + std::to_string(t) + ".f32", std::ios::binary);
    std::ofstream j(out + "/table_" + std::to_string(t) + ".json");
    j << "{\"name\": \"" << store->config().name << "\", \"dim\": " << dim << ", \"rows_per_field\": [";
    std::vector<float> rows;
    for (int f = 0; f < F; ++f) {
      rows.assign(order[f].size() * dim, 0.0f);
      // A fresh model creates each row as training first did.
      Status st = store->Get(order[f].data(), order[f].size(), rows.data(), init ? Access::kTrain : Access::kRead);
      if (!st.ok()) {
        std::fprintf(stderr, "export_rows: %s\n", st.message().c_str());
        return 1;
      }
      r.write(reinterpret_cast<const char*>(rows.data()), static_cast<std::streamsize>(rows.size() * sizeof(float)));
      j << (f ? ", " : "") << order[f].size();
    }
    j << "]}\n";
  }
  return 0;
}

}  // namespace
}  // namespace embark

int main(int argc, char** argv) {
  const bool init = argc > 1 && std::string(argv[1]) == "--init";
  if (argc != 4 + (init ? 1 : 0)) {
    std::fprintf(stderr, "usage: export_rows [--init] CHECKPOINT TRAIN_FILE OUT_DIR\n");
    return 2;
  }
  return embark::Run(init, argv[1 + init], argv[2 + init], argv[3 + init]);
}
