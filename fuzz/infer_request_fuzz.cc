// Fuzz target for the infer request parser (serve/request.h): any bytes must
// give either an error message or a batch whose structure is consistent,
// never a crash, a leak or undefined behaviour. Built with libFuzzer by
// scripts/fuzz.sh; replay_main.cc runs the corpus as an ordinary test.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "data/spec.h"
#include "serve/request.h"

namespace {

embark::DataSpec CsvSpec() {
  embark::CsvSchema s;
  s.label = "y";
  s.numeric = {"age"};
  s.categorical = {"user"};
  s.multi = {{"tags", "|"}};
  s.trim = true;
  return embark::DataSpec::Csv(s);
}

void Check(bool ok) {
  if (!ok) std::abort();
}

void RunOne(const embark::RowEncoder& enc, std::string_view body) {
  embark::serve::InferRequest req;
  embark::Batch batch;
  const std::string err = embark::serve::ParseInferRequest(body, enc, &req, &batch);
  if (!err.empty()) {
    Check(batch.size() == 0);
    return;
  }
  Check(req.rows > 0 && batch.size() == req.rows);
  Check(batch.offsets.size() == batch.size() * batch.num_fields + 1);
  Check(batch.dense.size() == batch.size() * batch.num_dense);
  Check(batch.keys.size() == batch.offsets.back() && batch.values.size() == batch.keys.size());
  for (size_t i = 1; i < batch.offsets.size(); ++i) Check(batch.offsets[i - 1] <= batch.offsets[i]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const embark::RowEncoder criteo(embark::DataSpec::Criteo());
  static const embark::RowEncoder ffm(embark::DataSpec::Libffm(3));
  static const embark::RowEncoder csv(CsvSpec());
  std::string_view body(reinterpret_cast<const char*>(data), size);
  RunOne(criteo, body);
  RunOne(ffm, body);
  RunOne(csv, body);
  return 0;
}
