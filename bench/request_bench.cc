// Cost of the serving request codec on Criteo-shaped requests: parsing an
// infer request of 1 and 256 rows into a batch (JSON + feature encoding),
// and writing the response. Run: build/bench/request_bench
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "data/spec.h"
#include "serve/request.h"

namespace {

// A request of `rows` Criteo rows, every field present.
std::string Body(int rows) {
  std::string s = "{\"inputs\":[";
  for (int i = 0; i < 13; ++i) {
    s += (i ? "," : "") + std::string("{\"name\":\"I") + std::to_string(i + 1) +
         "\",\"datatype\":\"INT64\",\"shape\":[" + std::to_string(rows) + "],\"data\":[";
    for (int r = 0; r < rows; ++r) s += (r ? "," : "") + std::to_string((r * 7 + i * 3) % 500);
    s += "]}";
  }
  for (int f = 0; f < 26; ++f) {
    s += ",{\"name\":\"C" + std::to_string(f + 1) + "\",\"datatype\":\"BYTES\",\"shape\":[" + std::to_string(rows) +
         "],\"data\":[";
    char buf[16];
    for (int r = 0; r < rows; ++r) {
      std::snprintf(buf, sizeof(buf), "%08x", (r * 2654435761u + f * 40503u));
      s += (r ? ",\"" : "\"") + std::string(buf) + "\"";
    }
    s += "]}";
  }
  return s + "]}";
}

void BM_ParseInferRequest(benchmark::State& st) {
  const embark::RowEncoder enc(embark::DataSpec::Criteo());
  const std::string body = Body(static_cast<int>(st.range(0)));
  embark::Batch batch;
  for (auto _ : st) {
    embark::serve::InferRequest req;
    std::string err = embark::serve::ParseInferRequest(body, enc, &req, &batch);
    if (!err.empty()) st.SkipWithError(err.c_str());
    benchmark::DoNotOptimize(batch.keys.data());
  }
  st.counters["rows/s"] = benchmark::Counter(static_cast<double>(st.range(0) * st.iterations()), benchmark::Counter::kIsRate);
  st.counters["MB/s"] = benchmark::Counter(static_cast<double>(body.size() * st.iterations()) / 1e6, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ParseInferRequest)->Arg(1)->Arg(256);

void BM_InferResponseJson(benchmark::State& st) {
  std::vector<float> p(st.range(0));
  for (size_t i = 0; i < p.size(); ++i) p[i] = 1.0f / (2.0f + i);
  for (auto _ : st) benchmark::DoNotOptimize(embark::serve::InferResponseJson("ctr", "1", "", p.data(), p.size()));
}
BENCHMARK(BM_InferResponseJson)->Arg(1)->Arg(256);

}  // namespace

BENCHMARK_MAIN();
