// Writes delta checkpoints into an online model directory as a stream
// trainer would, without training: for the serve end-to-end test
// (serve_deltas.sh) and the serving benchmark (bench/online_serve_bench.sh),
// which check and measure what serving does with deltas, not what training
// costs.
//
//   delta_writer DIR COUNT ROWS EVERY_S [SEED]
//
// Loads DIR (its snapshot and the deltas it has), then COUNT times, every
// EVERY_S seconds: takes ROWS keys of the first table (a different stride
// each time), nudges their rows in every table and the dense weights, and
// writes the next delta (base: DIR's snapshot id; newest sample: now). Prints
// one JSON line per delta: seq, rows, bytes, seconds to write.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/delta.h"
#include "nn/layers.h"

namespace embark {
namespace {

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int Fail(const Status& st) {
  std::fprintf(stderr, "delta_writer: %s\n", st.message().c_str());
  return 1;
}

int Run(const std::string& dir, int count, size_t rows, double every_s, uint64_t seed) {
  InitBlas();
  auto loaded = LoadCheckpoint(dir);
  if (!loaded.ok()) return Fail(loaded.status());
  LoadedCheckpoint ck = std::move(loaded).value();
  Model& m = *ck.model;
  // Every key of the first table, once.
  std::vector<uint64_t> all;
  {
    auto it = m.table(0)->NewIterator();
    RowBatch b;
    for (;;) {
      auto more = it->Next(&b);
      if (!more.ok()) return Fail(more.status());
      if (!more.value()) break;
      all.insert(all.end(), b.keys.begin(), b.keys.end());
    }
  }
  if (all.empty()) return Fail(Status::InvalidArgument(dir + ": the first table holds no rows"));
  rows = std::min(rows, all.size());
  uint64_t seq = ck.state.delta_seq;
  for (int k = 0; k < count; ++k) {
    if (k > 0) std::this_thread::sleep_for(std::chrono::duration<double>(every_s));
    const auto t0 = std::chrono::steady_clock::now();
    ++seq;
    std::vector<uint64_t> keys(rows);
    const size_t stride = 1 + (seed + seq * 7919) % 97;
    for (size_t i = 0; i < rows; ++i) keys[i] = all[(i * stride + seq * 104729) % all.size()];
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (int t = 0; t < m.num_tables(); ++t) {
      RowStore& s = *m.table(t);
      const size_t w = static_cast<size_t>(s.row_width()), d = static_cast<size_t>(s.dim());
      std::vector<float> r(keys.size() * w);
      std::vector<RowMeta> meta(keys.size());
      std::unique_ptr<bool[]> found(new bool[keys.size()]);
      if (Status st = s.Read(keys.data(), keys.size(), r.data(), meta.data(), found.get()); !st.ok()) return Fail(st);
      std::vector<uint64_t> kept;
      std::vector<float> kr;
      std::vector<RowMeta> km;
      for (size_t i = 0; i < keys.size(); ++i) {
        if (!found[i]) continue;
        for (size_t j = 0; j < d; ++j) r[i * w + j] += 0.001f * static_cast<float>(((keys[i] >> 3) + j + seq) % 7) - 0.003f;
        kept.push_back(keys[i]);
        kr.insert(kr.end(), r.begin() + i * w, r.begin() + (i + 1) * w);
        km.push_back(meta[i]);
      }
      if (Status st = s.Put(kept.data(), kept.size(), kr.data(), km.data()); !st.ok()) return Fail(st);
    }
    for (size_t i = 0; i < m.params().size(); i += 3) m.params().data()[i] *= 1.0f + 0.001f * static_cast<float>(seq % 5);
    DeltaInfo info;
    info.seq = seq;
    info.base = ck.state.snapshot_id;
    info.written_unix = NowUnix();
    info.newest_sample_unix = info.written_unix;
    info.state = ck.state;
    std::vector<std::vector<uint64_t>> per_table(m.num_tables(), keys);
    auto bytes = WriteDelta(dir, m, per_table, ck.opt, info);
    if (!bytes.ok()) return Fail(bytes.status());
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"seq\":%llu,\"rows\":%zu,\"bytes\":%llu,\"write_s\":%.4f}\n", static_cast<unsigned long long>(seq),
                keys.size(), static_cast<unsigned long long>(bytes.value()), took);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace embark

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: delta_writer DIR COUNT ROWS EVERY_S [SEED]\n");
    return 2;
  }
  return embark::Run(argv[1], std::stoi(argv[2]), std::stoull(argv[3]), std::stod(argv[4]),
                     argc == 6 ? std::stoull(argv[5]) : 1);
}
