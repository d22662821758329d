// Retrieval indexes compared on one data set: embark's exact index and its
// HNSW index (hnswlib), against faiss's IndexFlatIP, IndexHNSWFlat and
// IndexIVFFlat (faiss is linked into this benchmark only). Items and queries
// are unit vectors around Gaussian cluster centres, so recall means
// something. Per configuration: build seconds, recall@100 against the exact
// index, single-query latency (batch 1, one thread), queries/s at batch 1
// and 256 on all cores, and memory (the index's own estimate, and the RSS
// growth over the build).
//
//   ann_bench [--items 1000000] [--dim 64] [--queries 1000] [--clusters 1000] [--spread S] [--threads N]
//             [--methods hnsw16,hnsw32,faiss-flat,faiss-hnsw,faiss-ivf]
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "index/index.h"

extern "C" void openblas_set_num_threads(int);

namespace {

using embark::VectorIndex;
constexpr int kK = 100;

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double RssMB() {
  long pages = 0, resident = 0;
  std::ifstream("/proc/self/statm") >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

// n unit vectors, each a random one of the unit `centres` plus Gaussian
// noise of norm about `spread`, normalised.
std::vector<float> Clustered(size_t n, int dim, const std::vector<float>& centres, float spread, uint64_t seed) {
  const size_t nc = centres.size() / dim;
  std::vector<float> v(n * dim);
  const float noise = spread / std::sqrt(static_cast<float>(dim));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::uniform_int_distribution<size_t> pick(0, nc - 1);
  for (size_t i = 0; i < n; ++i) {
    const float* c = centres.data() + pick(rng) * dim;
    float* x = v.data() + i * dim;
    float norm = 0;
    for (int j = 0; j < dim; ++j) {
      x[j] = c[j] + noise * g(rng);
      norm += x[j] * x[j];
    }
    for (int j = 0; j < dim; ++j) x[j] /= std::sqrt(norm);
  }
  return v;
}

// One index under test: search(queries, n, ids, scores) for k = kK.
struct Method {
  std::string name, params;
  std::function<void(const float*, size_t, uint64_t*, float*)> search;
  double build_s = 0, mem_mb = 0, rss_mb = 0;
};

struct Row {
  std::string name, params;
  double build_s, recall, p50_ms, p99_ms, qps1, qps256, mem_mb, rss_mb;
};

double Recall(const std::vector<uint64_t>& got, const std::vector<uint64_t>& truth, size_t nq) {
  size_t hit = 0;
  for (size_t q = 0; q < nq; ++q) {
    std::unordered_set<uint64_t> t(truth.begin() + q * kK, truth.begin() + (q + 1) * kK);
    for (int i = 0; i < kK; ++i) hit += t.count(got[q * kK + i]);
  }
  return static_cast<double>(hit) / (nq * kK);
}

// Queries/s with `threads` threads taking batches of `batch` queries in turn,
// repeated over the query set for at least 0.5 s.
double Throughput(const Method& m, const std::vector<float>& query_set, int dim, size_t batch, int threads) {
  // The query set repeated to at least a batch per thread.
  std::vector<float> queries = query_set;
  while (queries.size() / dim < batch * threads) queries.insert(queries.end(), query_set.begin(), query_set.end());
  const size_t nq = queries.size() / dim, nb = (nq + batch - 1) / batch;
  std::atomic<size_t> done{0};
  const double t0 = Now();
  std::atomic<bool> stop{false};
  auto work = [&](int t) {
    omp_set_num_threads(1);
    std::vector<uint64_t> ids(batch * kK);
    std::vector<float> scores(batch * kK);
    for (size_t pass = 0; !stop; ++pass) {
      for (size_t b = t; b < nb; b += threads) {
        const size_t n = std::min(batch, nq - b * batch);
        m.search(queries.data() + b * batch * dim, n, ids.data(), scores.data());
        done += n;
      }
      if (Now() - t0 > 0.5) stop = true;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& t : pool) t.join();
  return static_cast<double>(done) / (Now() - t0);
}

Row Measure(const Method& m, const std::vector<float>& queries, int dim, const std::vector<uint64_t>& truth, int threads) {
  const size_t nq = queries.size() / dim;
  omp_set_num_threads(1);
  std::vector<uint64_t> ids(nq * kK);
  std::vector<float> scores(nq * kK);
  std::vector<double> ms(nq);
  for (size_t q = 0; q < nq; ++q) {
    const double t0 = Now();
    m.search(queries.data() + q * dim, 1, ids.data() + q * kK, scores.data() + q * kK);
    ms[q] = (Now() - t0) * 1e3;
  }
  std::sort(ms.begin(), ms.end());
  Row r{m.name, m.params, m.build_s, Recall(ids, truth, nq), ms[nq / 2], ms[std::min(nq - 1, nq * 99 / 100)], 0, 0,
        m.mem_mb, m.rss_mb};
  r.qps1 = Throughput(m, queries, dim, 1, threads);
  r.qps256 = Throughput(m, queries, dim, 256, threads);
  return r;
}

void Print(const Row& r) {
  std::printf("%-14s %-22s %8.1f %8.4f %8.3f %8.3f %10.0f %10.0f %9.1f %9.1f\n", r.name.c_str(), r.params.c_str(),
              r.build_s, r.recall, r.p50_ms, r.p99_ms, r.qps1, r.qps256, r.mem_mb, r.rss_mb);
  std::fflush(stdout);
}

// Runs `build` on all cores (faiss: OpenMP and BLAS), recording its seconds
// and the RSS it added.
template <typename F>
void Timed(Method* m, int threads, F build) {
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  const double rss0 = RssMB(), t0 = Now();
  build();
  m->build_s = Now() - t0;
  m->rss_mb = RssMB() - rss0;
  openblas_set_num_threads(1);
  omp_set_num_threads(1);
}

Method Ours(const std::string& name, const std::string& params, const VectorIndex* idx) {
  Method m{name, params, [idx](const float* q, size_t n, uint64_t* ids, float* s) {
             embark::Status st = idx->Search(q, n, kK, ids, s);
             if (!st.ok()) std::fprintf(stderr, "search: %s\n", st.message().c_str()), std::exit(1);
           }};
  return m;
}

Method Faiss(const std::string& name, const std::string& params, const faiss::Index* idx) {
  return {name, params,
          [idx](const float* q, size_t n, uint64_t* ids, float* s) {
            idx->search(static_cast<faiss::Index::idx_t>(n), q, kK, s, reinterpret_cast<faiss::Index::idx_t*>(ids));
          }};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"embark ann_bench: retrieval indexes on clustered unit vectors"};
  size_t items = 1000000, nq = 1000, clusters = 1000;
  float spread = 1.0f;
  int dim = 64, threads = static_cast<int>(std::thread::hardware_concurrency());
  app.add_option("--items", items, "items in the index")->check(CLI::Range(size_t{kK}, size_t{1} << 32));
  app.add_option("--dim", dim, "vector dimension")->check(CLI::Range(1, 4096));
  app.add_option("--queries", nq, "queries")->check(CLI::Range(1, 1000000));
  app.add_option("--clusters", clusters, "Gaussian clusters")->check(CLI::Range(1, 1000000));
  app.add_option("--spread", spread, "noise norm around a cluster's unit centre")->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--threads", threads, "threads for building and for the all-cores rates")->check(CLI::Range(1, 1024));
  std::string methods = "hnsw16,hnsw32,faiss-flat,faiss-hnsw,faiss-ivf";
  app.add_option("--methods", methods,
                 "what to measure besides the exact index, comma-separated: hnsw16, hnsw32 (embark's), faiss-flat, "
                 "faiss-hnsw, faiss-ivf [all]");
  CLI11_PARSE(app, argc, argv);
  auto wanted = [&methods](const std::string& m) { return ("," + methods + ",").find("," + m + ",") != std::string::npos; };
  // Searches as embark runs them: parallel over callers, one thread inside
  // each (OpenMP and BLAS); builds use every core (Timed).
  openblas_set_num_threads(1);
  omp_set_num_threads(1);

  std::printf("CPU: %s (%u logical cores); %zu items, dim %d, %zu clusters (spread %.2f), %zu queries, k %d, %d threads\n",
              CpuModel().c_str(), std::thread::hardware_concurrency(), items, dim, clusters, spread, nq, kK, threads);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> g;
  std::vector<float> centres(clusters * dim);
  for (float& c : centres) c = g(rng);
  for (size_t c = 0; c < clusters; ++c) {
    float norm = 0;
    for (int j = 0; j < dim; ++j) norm += centres[c * dim + j] * centres[c * dim + j];
    for (int j = 0; j < dim; ++j) centres[c * dim + j] /= std::sqrt(norm);
  }
  const std::vector<float> data = Clustered(items, dim, centres, spread, 2),
                           queries = Clustered(nq, dim, centres, spread, 3);
  std::vector<uint64_t> ids(items);
  for (size_t i = 0; i < items; ++i) ids[i] = i;

  std::printf("\n%-14s %-22s %8s %8s %8s %8s %10s %10s %9s %9s\n", "index", "params", "build s", "rec@100", "p50 ms",
              "p99 ms", "qps b1", "qps b256", "mem MB", "RSS+ MB");
  auto die = [](const embark::Status& s) {
    if (!s.ok()) std::fprintf(stderr, "%s\n", s.message().c_str()), std::exit(1);
  };

  // The exact index: the ground truth of every recall.
  auto exact = std::move(embark::NewExactIndex(dim).value());
  Method em = Ours("embark exact", "-", exact.get());
  Timed(&em, threads, [&] { die(exact->Add(ids.data(), data.data(), items)); });
  em.mem_mb = exact->memory_bytes() / 1e6;
  std::vector<uint64_t> truth(nq * kK);
  std::vector<float> scores(nq * kK);
  die(exact->Search(queries.data(), nq, kK, truth.data(), scores.data()));
  Print(Measure(em, queries, dim, truth, threads));
  exact.reset();

  for (int M : {16, 32}) {
    if (!wanted("hnsw" + std::to_string(M))) continue;
    auto h = std::move(embark::NewHnswIndex(dim, {.M = M, .ef_construction = 200, .ef_search = 50,
                                                   .initial_capacity = items, .add_threads = threads})
                           .value());
    Method hm = Ours("embark hnsw", "", h.get());
    Timed(&hm, threads, [&] { die(h->Add(ids.data(), data.data(), items)); });
    hm.mem_mb = h->memory_bytes() / 1e6;
    for (int ef : {50, 100, 200, 400}) {
      die(h->set_ef_search(ef));
      hm.params = "M" + std::to_string(M) + " efC200 ef" + std::to_string(ef);
      Print(Measure(hm, queries, dim, truth, threads));
    }
  }

  if (wanted("faiss-flat")) {
    faiss::IndexFlatIP flat(dim);
    Method fm = Faiss("faiss Flat", "IP", &flat);
    Timed(&fm, threads, [&] { flat.add(static_cast<faiss::Index::idx_t>(items), data.data()); });
    fm.mem_mb = flat.codes.size() / 1e6;
    Print(Measure(fm, queries, dim, truth, threads));
  }
  if (wanted("faiss-hnsw")) {
    faiss::IndexHNSWFlat hnsw(dim, 32, faiss::METRIC_INNER_PRODUCT);
    hnsw.hnsw.efConstruction = 200;
    Method fm = Faiss("faiss HNSW", "", &hnsw);
    Timed(&fm, threads, [&] { hnsw.add(static_cast<faiss::Index::idx_t>(items), data.data()); });
    const auto& gr = hnsw.hnsw;
    fm.mem_mb = (items * dim * 4.0 + gr.neighbors.size() * 4.0 + gr.offsets.size() * 8.0 + gr.levels.size() * 4.0) / 1e6;
    for (int ef : {64, 128, 256}) {
      hnsw.hnsw.efSearch = ef;
      fm.params = "M32 efC200 ef" + std::to_string(ef);
      Print(Measure(fm, queries, dim, truth, threads));
    }
  }
  if (wanted("faiss-ivf")) {
    const size_t nlist = std::min<size_t>(1024, items / 39);
    faiss::IndexFlatIP quantizer(dim);
    faiss::IndexIVFFlat ivf(&quantizer, dim, nlist, faiss::METRIC_INNER_PRODUCT);
    Method fm = Faiss("faiss IVFFlat", "", &ivf);
    Timed(&fm, threads, [&] {
      ivf.train(static_cast<faiss::Index::idx_t>(std::min(items, 64 * nlist)), data.data());
      ivf.add(static_cast<faiss::Index::idx_t>(items), data.data());
    });
    size_t codes = 0;
    for (size_t l = 0; l < nlist; ++l) codes += ivf.invlists->list_size(l);
    fm.mem_mb = (codes * (ivf.code_size + 8.0) + nlist * dim * 4.0) / 1e6;
    for (size_t probe : {8, 32, 64}) {
      ivf.nprobe = probe;
      fm.params = "nlist" + std::to_string(nlist) + " nprobe" + std::to_string(probe);
      Print(Measure(fm, queries, dim, truth, threads));
    }
  }
  std::printf("\nrecall@100 against embark exact; p50/p99: batch 1, one thread; qps b1: %d threads, each one query at a "
              "time; "
              "qps b256: %d threads, each searching batches of 256; mem: the index's estimate; RSS+: resident growth "
              "over the build\n",
              threads, threads);
  return 0;
}
