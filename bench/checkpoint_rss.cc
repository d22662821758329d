// How much memory a checkpoint save and load hold beyond the table itself.
//
//   checkpoint_rss [--gib 2.0] [--dim 64] [--dir /tmp/embark_rss_ck]
//
// Fills the embedding table of a DeepFM (SGD rows: dim floats each) until
// its rows hold --gib GiB, saves a checkpoint, and reports the rise of the
// peak resident set (VmHWM, reset before each phase through
// /proc/self/clear_refs) as a fraction of the table's bytes. The load runs
// in a fresh process (this program with --load) so that the saved model's
// memory is not counted: there the figure is the peak during the load minus
// the resident set once the model is loaded.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "checkpoint/checkpoint.h"
#include "nn/layers.h"
#include "util/env.h"

namespace embark {
namespace {

// A field of /proc/self/status in bytes ("VmRSS", "VmHWM").
uint64_t StatusBytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string want = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.compare(0, want.size(), want) == 0) return std::strtoull(line.c_str() + want.size(), nullptr, 10) * 1024;
  return 0;
}

// Sets VmHWM back to the current resident set.
bool ResetPeak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  return static_cast<bool>(out);
}

double GiB(uint64_t b) { return b / double(1ull << 30); }
double MiB(uint64_t b) { return b / double(1ull << 20); }

std::unique_ptr<Model> NewModel(int dim) {
  TrainConfig cfg;
  cfg.model = "deepfm";
  cfg.embedding_dim = dim;
  cfg.mlp = {8};
  cfg.sparse_optimizer = "sgd";
  return Model::Create(cfg, DataSpec::Criteo()).value();
}

int Load(const std::string& dir, Env* env) {
  const uint64_t before = StatusBytes("VmRSS");
  if (!ResetPeak()) std::fprintf(stderr, "cannot reset VmHWM; the figure includes earlier peaks\n");
  Env* e = env;
  const uint64_t t0 = e->NowMicros();
  auto ck = LoadCheckpoint(dir, 0, 1, env);
  const double secs = (e->NowMicros() - t0) / 1e6;
  if (!ck.ok()) {
    std::fprintf(stderr, "load: %s\n", ck.status().message().c_str());
    return 1;
  }
  const uint64_t peak = StatusBytes("VmHWM"), after = StatusBytes("VmRSS");
  RowStore* t = ck->model->table(ck->model->table_index("embeddings"));
  const uint64_t table_bytes = t->stats().memory_bytes;
  std::printf("load: %.1f s; RSS %.0f MiB before, %.0f MiB after (table %.2f GiB in memory), peak %.0f MiB\n", secs,
              MiB(before), MiB(after), GiB(table_bytes), MiB(peak));
  std::printf("load: peak above the loaded model: %.1f MiB = %.2f%% of the table's bytes\n", MiB(peak - after),
              100.0 * (peak - after) / table_bytes);
  return 0;
}

int Run(int argc, char** argv) {
  double gib = 2.0;
  int dim = 64;
  std::string dir = "/tmp/embark_rss_ck";
  bool load_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--gib" && i + 1 < argc) gib = std::atof(argv[++i]);
    else if (a == "--dim" && i + 1 < argc) dim = std::atoi(argv[++i]);
    else if (a == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (a == "--load") load_only = true;
    else {
      std::fprintf(stderr, "usage: checkpoint_rss [--gib G] [--dim D] [--dir DIR]\n");
      return 2;
    }
  }
  InitBlas();
  Env* env = Env::Posix();
  if (load_only) return Load(dir, env);

  auto model = NewModel(dim);
  RowStore* t = model->table(model->table_index("embeddings"));
  const size_t width = t->row_width();
  const uint64_t rows = static_cast<uint64_t>(gib * (1ull << 30) / (width * sizeof(float)));
  {
    RowBatch b;
    const size_t block = 1 << 16;
    b.keys.resize(block);
    b.rows.resize(block * width);
    for (uint64_t k = 0; k < rows; k += block) {
      const size_t n = std::min<uint64_t>(block, rows - k);
      for (size_t i = 0; i < n; ++i) {
        b.keys[i] = (k + i) * 0x9E3779B97F4A7C15ULL + 1;
        for (size_t j = 0; j < width; ++j) b.rows[i * width + j] = static_cast<float>((k + i + j) % 1000) * 1e-3f;
      }
      Status s = t->Put(b.keys.data(), n, b.rows.data(), nullptr);
      if (!s.ok()) {
        std::fprintf(stderr, "fill: %s\n", s.message().c_str());
        return 1;
      }
    }
  }
  const uint64_t row_bytes = rows * width * sizeof(float);
  const uint64_t table_bytes = t->stats().memory_bytes;
  std::printf("table: %llu rows of %zu floats: %.2f GiB of rows, %.2f GiB in memory (keys, metadata, index)\n",
              static_cast<unsigned long long>(rows), width, GiB(row_bytes), GiB(table_bytes));

  const uint64_t before = StatusBytes("VmRSS");
  if (!ResetPeak()) std::fprintf(stderr, "cannot reset VmHWM; the figure includes earlier peaks\n");
  const uint64_t t0 = env->NowMicros();
  Status s = SaveCheckpoint(dir, *model, {}, {}, nullptr, env);
  const double secs = (env->NowMicros() - t0) / 1e6;
  if (!s.ok()) {
    std::fprintf(stderr, "save: %s\n", s.message().c_str());
    return 1;
  }
  const uint64_t peak = StatusBytes("VmHWM");
  uint64_t disk = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) disk += e.file_size();
  std::printf("save: %.1f s, %.2f GiB on disk; RSS %.0f MiB before, peak %.0f MiB\n", secs, GiB(disk), MiB(before),
              MiB(peak));
  std::printf("save: peak above the model: %.1f MiB = %.2f%% of the table's bytes\n", MiB(peak - before),
              100.0 * (peak - before) / table_bytes);
  model.reset();
  std::fflush(stdout);

  pid_t child = ::fork();
  if (child == 0) {
    ::execl("/proc/self/exe", argv[0], "--load", "--dir", dir.c_str(), static_cast<char*>(nullptr));
    std::perror("exec");
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace
}  // namespace embark

int main(int argc, char** argv) { return embark::Run(argc, argv); }
