// The machine's own limits, and the input pipeline's rate, for the roofline
// in bench/run.sh. Each mode prints one JSON object.
//   machine_bench sgemm THREADS        OpenBLAS sgemm GFLOP/s: a large square
//                                      product, and DLRM's training GEMMs
//                                      (forward, weight and input gradients)
//                                      on sub-batches of 2048 / THREADS rows
//   machine_bench gather THREADS FLOATS random-row gather from a 2 GiB array
//                                      on huge pages (far larger than the last
//                                      cache level),
//                                      rows of FLOATS floats, rows/s
//   machine_bench parse THREADS FILE   Criteo TSV (plain, gzip or zstd) read,
//                                      parsed and batched by THREADS parser
//                                      threads as the trainer's input: MB/s
//                                      and rows/s
#include <cblas.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "data/pipeline.h"

extern "C" void openblas_set_num_threads(int);

namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// GFLOP/s of C[m,n] = A[m,k] B[k,n] (with the given transposes), best of a
// few timed repetitions of at least 0.2 s each.
double SgemmRate(int m, int n, int k, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb) {
  std::vector<float> a(static_cast<size_t>(m) * k, 0.01f), b(static_cast<size_t>(k) * n, 0.02f),
      c(static_cast<size_t>(m) * n);
  const int lda = ta == CblasNoTrans ? k : m, ldb = tb == CblasNoTrans ? n : k;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    int iters = 0;
    const double t0 = Now();
    double t = t0;
    while (t - t0 < 0.2) {
      cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n);
      ++iters;
      t = Now();
    }
    best = std::max(best, 2.0 * m * n * k * iters / (t - t0) / 1e9);
  }
  return best;
}

int Sgemm(int threads) {
  openblas_set_num_threads(threads);
  const double square = SgemmRate(2048, 2048, 2048, CblasNoTrans, CblasNoTrans);
  // DLRM's dense layers (bench/../examples/dlrm.toml, embedding dim 16):
  // bottom 13-512-256-64-16, top 367-512-256-1, on the rows one training
  // thread sees. Each layer runs three GEMMs per step, as src/nn/layers.cc:
  // y = x W^T, dW += dy^T x, dx = dy W. The rate is their FLOPs over their
  // time, one trainer thread per core, so BLAS runs single-threaded here.
  openblas_set_num_threads(1);
  const int rows = 2048 / threads;
  const int layers[][2] = {{13, 512}, {512, 256}, {256, 64}, {64, 16}, {367, 512}, {512, 256}, {256, 1}};
  double flops = 0, seconds = 0;
  for (const auto& l : layers) {
    const int in = l[0], out = l[1];
    const double f = 2.0 * rows * in * out;
    for (double rate : {SgemmRate(rows, out, in, CblasNoTrans, CblasTrans),
                        SgemmRate(out, in, rows, CblasTrans, CblasNoTrans),
                        SgemmRate(rows, in, out, CblasNoTrans, CblasNoTrans)}) {
      flops += f;
      seconds += f / (rate * 1e9);
    }
  }
  std::printf("{\"threads\": %d, \"sgemm_square_gflops\": %.2f, \"sgemm_dlrm_shapes_gflops_per_thread\": %.2f}\n",
              threads, square, flops / seconds / 1e9);
  return 0;
}

int Gather(int threads, int floats) {
  const size_t bytes = size_t{2} << 30, row_bytes = sizeof(float) * floats, rows = bytes / row_bytes;
  // On 2 MiB pages, as embark's row blocks are, so the limit is the
  // memory's and not the TLB's.
  float* table = static_cast<float*>(std::aligned_alloc(size_t{2} << 20, bytes));
  if (table == nullptr) return 1;
  madvise(table, bytes, MADV_HUGEPAGE);
  for (size_t i = 0; i < rows * floats; i += 1024) table[i] = 1.0f;  // fault every page in
  constexpr size_t kBatch = 4096, kBatches = 256;
  std::vector<uint64_t> idx(kBatch * kBatches);
  std::mt19937_64 rng(7);
  for (auto& i : idx) i = rng() % rows;
  const double seconds = 2.0;
  std::vector<double> rate(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<float> out(kBatch * floats);
      size_t n = 0, b = t * 17;
      const double t0 = Now();
      double now = t0;
      while (now - t0 < seconds) {
        const uint64_t* ix = idx.data() + (b++ % kBatches) * kBatch;
        for (size_t i = 0; i < kBatch; ++i) std::memcpy(&out[i * floats], &table[ix[i] * floats], row_bytes);
        n += kBatch;
        if (out[0] == 42.0f) std::printf(" ");  // keeps the copies
        now = Now();
      }
      rate[t] = n / (now - t0);
    });
  }
  for (auto& th : pool) th.join();
  double total = 0;
  for (double r : rate) total += r;
  std::free(table);
  std::printf("{\"threads\": %d, \"row_floats\": %d, \"table_bytes\": %zu, \"gather_rows_per_sec\": %.0f}\n", threads,
              floats, bytes, total);
  return 0;
}

int Parse(int threads, const std::string& file) {
  embark::ReadOptions ro;
  ro.parse_threads = threads;
  embark::StreamOptions so;
  so.batch_size = 2048;
  const double t0 = Now();
  auto stream = embark::OpenStream({file}, embark::DataSpec::Criteo(), ro, so);
  embark::Batch batch;
  uint64_t rows = 0;
  for (;;) {
    auto more = stream->Next(&batch);
    if (!more.ok()) {
      std::fprintf(stderr, "machine_bench: %s\n", more.status().message().c_str());
      return 1;
    }
    if (!*more) break;
    rows += batch.size();
  }
  const double s = Now() - t0;
  std::printf("{\"threads\": %d, \"file\": \"%s\", \"file_bytes\": %llu, \"rows\": %llu, \"seconds\": %.3f, "
              "\"mb_per_sec\": %.1f, \"rows_per_sec\": %.0f}\n",
              threads, file.c_str(), static_cast<unsigned long long>(stream->bytes_total()),
              static_cast<unsigned long long>(rows), s, stream->bytes_total() / s / 1e6, rows / s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 2 ? argv[1] : "";
  const int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  if (mode == "sgemm" && argc == 3 && threads > 0) return Sgemm(threads);
  if (mode == "gather" && argc == 4 && threads > 0) return Gather(threads, std::atoi(argv[3]));
  if (mode == "parse" && argc == 4 && threads > 0) return Parse(threads, argv[3]);
  std::fprintf(stderr,
               "usage: machine_bench sgemm THREADS | gather THREADS FLOATS | parse THREADS FILE\n");
  return 2;
}
