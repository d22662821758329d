// Fuzz target for the data-line parsers (data/parse.h): the first byte picks
// the format (Criteo, libsvm, libffm with 5 fields, CSV with a schema whose
// header is the first line); the rest is a chunk of lines. Any bytes must
// give samples with a consistent structure plus bad lines that name a line
// of the chunk, never a crash or undefined behaviour.
#include <cstdint>
#include <string>

#include "data/parse.h"
#include "fuzz/fuzz_util.h"

using embark::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  embark::DataSpec spec;
  switch (data[0] % 4) {
    case 0: spec = embark::DataSpec::Criteo(); break;
    case 1: spec = embark::DataSpec::Libsvm(); break;
    case 2: spec = embark::DataSpec::Libffm(5); break;
    default: {
      embark::CsvSchema s;
      s.label = "y";
      s.numeric = {"x"};
      s.categorical = {"c"};
      s.multi = {{"m", "|"}};
      s.trim = data[0] & 4;
      s.label_threshold = 0.5;
      s.use_threshold = data[0] & 8;
      spec = embark::DataSpec::Csv(s);
    }
  }
  embark::Chunk chunk;
  chunk.file = "fuzz";
  chunk.first_line = 1;
  chunk.text.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  if (chunk.text.empty() || chunk.text.back() != '\n') chunk.text += '\n';  // chunks hold whole lines
  uint64_t lines = 0;
  for (char c : chunk.text) lines += c == '\n';
  embark::ColumnPlan plan;
  size_t skip = 0;
  if (spec.format == embark::Format::kCsv) {
    auto r = embark::MakeColumnPlan(spec, chunk.text.substr(0, chunk.text.find('\n')), chunk.file);
    if (!r.ok()) return 0;
    plan = std::move(r).value();
    skip = 1;
  }
  embark::Batch batch;
  batch.Reset(spec.num_dense, spec.num_fields);
  std::vector<embark::BadLine> bad;
  embark::ParseChunk(chunk, spec, spec.format == embark::Format::kCsv ? &plan : nullptr, skip, &batch, &bad);
  embark::fuzz::CheckBatch(batch);
  Check(batch.size() + bad.size() <= lines);
  for (const auto& b : bad) Check(b.line >= 1 && b.line <= lines && !b.message.empty());
  return 0;
}
