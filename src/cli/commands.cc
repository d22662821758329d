#include "cli/commands.h"

#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "embark/embark.h"
#include "checkpoint/checkpoint.h"
#include "gen/gen.h"
#include "nn/layers.h"
#include "retrieval/retrieval.h"
#include "serve/server.h"
#include "serve/topk.h"
#include "train/config.h"
#include "train/report.h"
#include "util/fs.h"

namespace embark::cli {
namespace {

[[noreturn]] void Fail(const std::string& msg) {
  std::fprintf(stderr, "embark: error: %s\n", msg.c_str());
  std::fflush(stderr);
  std::exit(1);
}

void Check(const Status& s) {
  if (!s.ok()) Fail(s.message());
}

template <typename T>
T Unwrap(Result<T> r) {
  if (!r.ok()) Fail(r.status().message());
  return std::move(r).value();
}

void PrintMetrics(const char* what, const Metrics& m) {
  std::printf("%s: auc %.6f  logloss %.6f  normalized_entropy %.6f  calibration %.4f  (rows %zu, ctr %.4f)\n", what,
              m.auc, m.logloss, m.ne, m.calibration, m.count, m.ctr);
}

// ---- gen -------------------------------------------------------------------
void PrintWindows(const GenOptions& opt, const GenReport& r) {
  std::printf("wrote %llu rows in %zu windows", static_cast<unsigned long long>(r.train.rows), r.windows.size());
  if (!opt.out.empty()) std::printf(" to %s", opt.out.c_str());
  if (!opt.out_dir.empty())
    std::printf("%s %s .. %s", opt.out.empty() ? " to" : " and", r.windows.front().path.c_str(),
                r.windows.back().path.c_str());
  std::printf("\n%6s %10s %7s %12s %16s %18s %13s\n", "window", "rows", "ctr", "optimal_auc", "optimal_logloss",
              "window0_model_auc", "new_id_share");
  for (const GenWindow& w : r.windows)
    std::printf("%6u %10llu %7.4f %12.6f %16.6f %18.6f %13.4f\n", w.index,
                static_cast<unsigned long long>(w.figures.rows), w.figures.ctr, w.figures.optimal_auc,
                w.figures.optimal_logloss, w.window0_model_auc, w.new_id_share);
  std::printf("all windows: ctr %.4f  optimal_auc %.6f  optimal_logloss %.6f\n", r.train.ctr, r.train.optimal_auc,
              r.train.optimal_logloss);
}

void RegisterGen(CLI::App* app) {
  auto* cmd = app->add_subcommand("gen", "Write Criteo-format data drawn from a planted model; print its optimal AUC/logloss");
  auto opt = std::make_shared<GenOptions>();
  auto json = std::make_shared<bool>(false);
  // Range-checked before conversion: a negative count is refused, not wrapped.
  cmd->add_option("--rows", opt->rows, "Training rows to write (with --drift: in all, split evenly over the windows)")
      ->required()
      ->check(CLI::Range(uint64_t{1}, kMaxGenRows));
  cmd->add_option("--seed", opt->seed, "Seed: same seed, same bytes")->capture_default_str();
  cmd->add_option("--out", opt->out, "Training file to write (Criteo TSV); with --drift every window, in order");
  cmd->add_option("--valid-rows", opt->valid_rows, "Validation rows to write (same planted model)")
      ->check(CLI::Range(uint64_t{0}, kMaxGenRows));
  cmd->add_option("--valid-out", opt->valid_out, "Validation file to write");
  cmd->add_option("--vocab", opt->max_vocab, "Ids in the largest categorical fields")->capture_default_str();
  cmd->add_option("--zipf", opt->zipf, "Zipf exponent of id frequencies")->capture_default_str();
  cmd->add_flag("--drift", opt->drift,
                "A stream whose planted model changes from window to window: ids appear and fade, ids change "
                "their click rates; prints each window's optimal AUC (docs/data.md)");
  cmd->add_option("--windows", opt->windows,
                  "Windows of --drift data [" + std::to_string(kDefaultDriftWindows) + "]")
      ->check(CLI::Range(uint32_t{1}, kMaxDriftWindows));
  cmd->add_option("--out-dir", opt->out_dir,
                  "With --drift: write DIR/part-00000.tsv, part-00001.tsv, ... one file a window, each through a "
                  "dot-file temporary (for train --stream on DIR)");
  cmd->add_flag("--json", *json, "Print one JSON object with the figures (with --drift: a \"windows\" array)");
  cmd->callback([opt, json] {
    GenReport r = Unwrap(Generate(*opt));
    const GenFigures& f = r.valid.rows > 0 ? r.valid : r.train;
    if (*json) {
      std::printf("%s\n", ToJson(r).dump().c_str());
    } else if (!r.windows.empty()) {
      PrintWindows(*opt, r);
    } else {
      std::printf("wrote %llu rows to %s", static_cast<unsigned long long>(r.train.rows), opt->out.c_str());
      if (r.valid.rows > 0)
        std::printf(" and %llu rows to %s", static_cast<unsigned long long>(r.valid.rows), opt->valid_out.c_str());
      std::printf("\n%s: ctr %.4f  optimal_auc %.6f  optimal_logloss %.6f  first_order_auc %.6f\n",
                  r.valid.rows > 0 ? "validation data" : "data", f.ctr, f.optimal_auc, f.optimal_logloss,
                  f.first_order_auc);
    }
  });
}

// ---- train -----------------------------------------------------------------
struct TrainArgs {
  TrainOptions opt;
  std::vector<std::pair<std::string, std::string>> values;  // parameter flags, in order
  bool json = false, quiet = false, stream = false;
};

// The trainer a SIGTERM or SIGINT asks to stop (train --stream).
std::atomic<Trainer*> g_stream_trainer{nullptr};

extern "C" void StopStream(int) {
  if (Trainer* t = g_stream_trainer.load()) t->Stop();
}

void RegisterTrain(CLI::App* app) {
  auto* cmd = app->add_subcommand("train", "Train a model; writes a checkpoint directory");
  auto a = std::make_shared<TrainArgs>();
  TrainOptions& o = a->opt;
  cmd->add_option("--data", o.train_files,
                  "Training files (plain, gzip or zstd); with --stream, the one source: - (standard input), a named "
                  "pipe, a directory (new files read once, in name order) or a file followed as it grows")
      ->required()
      ->check(CLI::Validator(
          [](std::string& v) { return v == "-" ? std::string() : CLI::ExistingPath(v); }, "PATH"));
  cmd->add_flag("--stream", a->stream,
                "Online training: read --data without end, score each batch before training on it, write delta "
                "checkpoints (--delta-every) and snapshots (--snapshot-every) to --out; SIGTERM or SIGINT stops it "
                "after a final snapshot. Restarted with the same --out, it resumes (docs/online.md)");
  cmd->add_option("--valid", o.valid_files, "Validation files")->check(CLI::ExistingFile);
  cmd->add_option("--out", o.out_dir, "Checkpoint directory to write")->required();
  cmd->add_option("--config", o.config_file, "TOML file of parameters (see docs/parameters.md)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--resume", o.resume_from,
                  "Continue training from this checkpoint; its config is the base (see 'On --resume' below)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--schema", o.schema_file, "CSV schema (TOML) for --format csv")->check(CLI::ExistingFile);
  cmd->add_flag("--json", a->json, "Print one JSON object with the run's figures");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  // Every training parameter becomes a flag, from its one declaration.
  // A former name is a flag of its own, recorded under that name, so that
  // giving both names is refused naming both (ResolveTrainConfig).
  for (const ParamInfo& p : ListParams()) {
    std::string flag = p.flag, help = p.help;
    if (p.name == "batch_size") flag += ",--batch";
    for (const std::string& old : p.former_names) help += " (" + FlagName(old) + ": its former name, deprecated)";
    const char* group = p.fixed_on_resume ? "Parameters (fixed by the checkpoint on --resume)"
                                          : "Parameters (may change on --resume)";
    auto add = [&](const std::string& flags, const std::string& name, const std::string& text, const char* grp) {
      auto set = [a, name](const std::string& v) { a->values.emplace_back(name, v); };
      if (p.type == "bool") {
        // --flag is true; --flag=false (or 0) turns off one whose default is true.
        cmd->add_option_function<std::string>(
               flags, [set](const std::string& v) { set(v.empty() ? "true" : v); },
               text + " [" + p.default_value + "]")
            ->expected(0, 1)
            ->type_name("[=true|false]")
            ->group(grp);
      } else {
        cmd->add_option_function<std::string>(flags, set, text + " [" + p.default_value + "]")
            ->type_name(p.type)
            ->group(grp);
      }
    };
    add(flag, p.name, help, group);
    for (const std::string& old : p.former_names)
      add(FlagName(old), old, "Former name of " + p.flag + " (deprecated)", "Former names (deprecated)");
  }
  cmd->footer(
      "On --resume: the run starts from the checkpoint's config, not the defaults. Values given explicitly\n"
      "(flag or --config) replace the parameters that may change on --resume; a parameter fixed by the\n"
      "checkpoint (it shapes the model or its stored state) keeps the checkpoint's value, and a different\n"
      "value is refused with an error naming both. Table and reasons: docs/parameters.md.");
  cmd->callback([a] {
    TrainOptions& o = a->opt;
    for (const auto& [name, value] : a->values) Check(o.Set(name, value));
    o.progress = !a->quiet;
    o.log_info = !a->quiet;
    if (a->stream) {
      if (o.train_files.size() != 1) Check(Status::InvalidArgument("--stream reads one source: give --data once"));
      o.stream = o.train_files[0];
      o.train_files.clear();
      if (a->json)
        o.on_stream_report = [](const std::string& line) {
          std::printf("%s\n", line.c_str());
          std::fflush(stdout);
        };
    } else {
      for (const std::string& f : o.train_files)
        if (f == "-" || std::filesystem::is_directory(f))
          Check(Status::InvalidArgument("--data " + f + ": " +
                                        (f == "-" ? "standard input" : std::string("a directory")) +
                                        " is a stream source: add --stream, or give files"));
    }
    // Under mpirun/srun every rank runs this same command; rank 0 speaks.
    auto trainer = Unwrap(Trainer::Open(o));
    const bool lead = trainer->rank() == 0;
    if (a->stream) {
      // The first SIGTERM or SIGINT stops the stream cleanly; a second one
      // (the handler resets itself) ends the process at once.
      g_stream_trainer.store(trainer.get());
      struct sigaction sa {};
      sa.sa_handler = StopStream;
      sa.sa_flags = SA_RESETHAND;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGTERM, &sa, nullptr);
      sigaction(SIGINT, &sa, nullptr);
    }
    auto result = trainer->Fit();
    g_stream_trainer.store(nullptr);
    if (!result.ok() && trainer->ranks() > 1) {
      // The other ranks would wait for this one: end the whole job.
      std::fprintf(stderr, "embark: rank %d: %s\n", trainer->rank(), result.status().message().c_str());
      trainer->AbortJob(1);
    }
    TrainReport rep = Unwrap(std::move(result));
    if (!lead) return;
    const CheckpointInfo info = trainer->info();
    if (rep.bad_lines > 0) {
      std::fprintf(stderr, "embark: skipped %lld bad line(s); first ones:\n", static_cast<long long>(rep.bad_lines));
      for (const auto& e : rep.bad_examples) std::fprintf(stderr, "  %s\n", e.c_str());
    }
    if (a->json) {
      std::printf("%s\n", ToJson(rep, info.model).dump().c_str());
      return;
    }
    if (a->stream)
      std::printf("trained %s online: %llu samples from the stream, %.1f CPU-seconds, peak RSS %.1f MiB\n",
                  info.model.c_str(), static_cast<unsigned long long>(rep.samples), rep.cpu_seconds,
                  rep.peak_rss_bytes / 1048576.0);
    else
      std::printf("trained %s: %d epoch(s), %llu samples, %.0f samples/s on %d thread(s), %.1f CPU-seconds, "
                  "peak RSS %.1f MiB\n",
                  info.model.c_str(), rep.epochs_done, static_cast<unsigned long long>(rep.samples),
                  rep.samples_per_sec, rep.threads, rep.cpu_seconds, rep.peak_rss_bytes / 1048576.0);
    if (rep.ranks > 1)
      std::printf("%d ranks: %llu samples in all, %.0f samples/s; rank 0 waited %.2f s on communication\n", rep.ranks,
                  static_cast<unsigned long long>(rep.global_samples),
                  rep.train_seconds > 0 ? rep.global_samples / rep.train_seconds : 0, rep.comm_wait_seconds);
    if (rep.has_valid) PrintMetrics("validation", rep.valid);
    std::printf("model written to %s\n", o.out_dir.c_str());
  });
}

// ---- eval / predict ----------------------------------------------------------
struct ScoreArgs {
  std::string model, out;
  std::vector<std::string> data;
  bool json = false;
  int threads = 0;
  int64_t max_bad_lines = 0;
  int64_t memory_budget = 0;
  std::string table_dir;
  PredictorOptions options() const {
    PredictorOptions o;
    o.threads = threads;
    o.memory_budget = memory_budget;
    o.table_dir = table_dir;
    return o;
  }
};

// The settings of every command that loads a checkpoint to score with it
// (eval, predict, index, retrieve): threads, bad lines and the tables'
// storage, each checked by its parameter's declaration (range and message),
// the same as for train.
void AddScoringSettings(CLI::App* cmd, ScoreArgs* a, const char* threads_help = "Scoring threads; 0 means one per core.") {
  auto declared = [cmd](const char* name, const char* help, auto* out) {
    const ParamDef* p = FindParam(name);
    cmd->add_option_function<std::string>(
           FlagName(name),
           [p, out](const std::string& v) {
             TrainConfig c;
             if (Status s = p->set(&c, v); !s.ok()) Fail(FlagName(p->name) + ": " + s.message());
             *out = static_cast<std::remove_pointer_t<decltype(out)>>(std::stoll(p->get(c)));
           },
           std::string(help) + " [" + p->get(TrainConfig{}) + "]")
        ->type_name(p->type);
  };
  declared("threads", threads_help, &a->threads);
  declared("max_bad_lines", "Malformed lines to skip before failing.", &a->max_bad_lines);
  declared("memory_budget",
           "RAM for the embedding tables, e.g. 4G; rows beyond it are read from disk under --table-dir. "
           "0: every row in RAM.",
           &a->memory_budget);
  cmd->add_option("--table-dir", a->table_dir, "Directory for the rows beyond --memory-budget (scratch)");
}

void AddScoreOptions(CLI::App* cmd, ScoreArgs* a) {
  cmd->add_option("--model", a->model, "Checkpoint directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--data", a->data, "Input files, same format as training")->required()->check(CLI::ExistingFile);
  AddScoringSettings(cmd, a);
}

// The model family of the checkpoint in `dir` (its config.toml; the load
// that follows verifies every file), or "" when that cannot be read.
std::string CheckpointFamily(const std::string& dir) {
  std::ifstream in(dir + "/config.toml", std::ios::binary);
  if (!in) return "";
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TrainConfig cfg;
  if (!ParseConfigToml(text, dir + "/config.toml", &cfg).ok()) return "";
  return cfg.model;
}

// A two-tower checkpoint for retrieval (eval, index), frozen for inference.
struct RetrievalModel {
  LoadedCheckpoint ck;
  std::unique_ptr<ThreadPool> pool;
};

RetrievalModel OpenRetrieval(const ScoreArgs& a) {
  RetrievalModel r;
  StorageOptions storage;
  storage.memory_budget = a.memory_budget;
  storage.dir = a.table_dir;
  r.ck = Unwrap(LoadCheckpoint(a.model, 0, 1, Env::Posix(), a.memory_budget > 0 ? &storage : nullptr));
  if (r.ck.model->tower_dim() == 0)
    Fail(a.model + ": model '" + r.ck.model->config().model + "' is a ranking model; this needs a two_tower model");
  InitBlas();
  r.ck.model->FreezeForInference();
  r.pool = std::make_unique<ThreadPool>(a.threads > 0 ? a.threads : DefaultThreads());
  return r;
}

std::vector<int> ParseKs(const std::string& text) {
  std::vector<int> ks;
  size_t at = 0;
  while (at <= text.size()) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(at, comma - at);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 1 || v > 100000) Fail("--k: '" + item + "' is not a K in [1, 100000]");
    ks.push_back(static_cast<int>(v));
    at = comma + 1;
  }
  return ks;
}

struct RetrievalArgs {
  std::vector<std::string> items;
  std::string index, ks = "10,50,100";
  int ef_search = 0;
};

// eval of a two-tower model: recall@K and NDCG@K of --data's positive rows
// against the catalogue of --items (exact search) and, with --index, that
// index (ANN).
void EvalRetrieval(const ScoreArgs& a, const RetrievalArgs& ra) {
  if (ra.items.empty() && ra.index.empty())
    Fail("a two_tower model is evaluated by retrieving from a catalogue: give --items FILE (item rows in the "
         "model's format) and/or --index DIR (from embark index)");
  const std::vector<int> ks = ParseKs(ra.ks);
  RetrievalModel r = OpenRetrieval(a);
  const Model& model = *r.ck.model;
  Queries q = Unwrap(EmbedQueries(model, a.data, r.pool.get(), a.max_bad_lines));
  if (q.size() == 0) Fail("no positive rows (label > 0) with an item in --data: nothing to retrieve for");
  nlohmann::json out = {{"queries", q.size()}};
  auto report = [&](const char* name, const RetrievalMetrics& m, size_t items) {
    nlohmann::json j = {{"items", items}, {"search_seconds", m.seconds}};
    if (!a.json) std::printf("%s (%zu items):", name, items);
    for (size_t i = 0; i < m.ks.size(); ++i) {
      const std::string k = std::to_string(m.ks[i]);
      j["recall@" + k] = m.recall[i];
      j["ndcg@" + k] = m.ndcg[i];
      if (!a.json) std::printf("  recall@%s %.4f  ndcg@%s %.4f", k.c_str(), m.recall[i], k.c_str(), m.ndcg[i]);
    }
    if (m.unknown > 0) j["unknown_items"] = m.unknown;
    if (!a.json) {
      std::printf("  (%llu queries", static_cast<unsigned long long>(m.queries));
      if (m.unknown > 0) std::printf(", %llu of their items not in the catalogue", static_cast<unsigned long long>(m.unknown));
      std::printf(")\n");
    }
    out[name] = j;
  };
  if (!ra.items.empty()) {
    ItemCatalogue cat = Unwrap(EmbedItems(model, ra.items, r.pool.get(), a.max_bad_lines));
    auto idx = Unwrap(BuildIndex(cat, "exact"));
    RetrievalMetrics m = Unwrap(EvaluateRetrieval(*idx, q, ks, r.pool.get()));
    std::unordered_set<uint64_t> known(cat.keys.begin(), cat.keys.end());
    for (uint64_t item : q.items) m.unknown += known.count(item) ? 0 : 1;
    report("exact", m, cat.size());
  }
  if (!ra.index.empty()) {
    auto idx = Unwrap(LoadIndex(ra.index, model.tower_dim()));
    if (ra.ef_search > 0) {
      auto* h = dynamic_cast<HnswIndex*>(idx.get());
      if (h == nullptr) Fail("--ef-search: the index in " + ra.index + " is " + idx->kind() + ", not hnsw");
      if (Status st = h->set_ef_search(ra.ef_search); !st.ok()) Fail(st.message());
    }
    RetrievalMetrics m = Unwrap(EvaluateRetrieval(*idx, q, ks, r.pool.get()));
    report(idx->kind() == "exact" ? "index" : "ann", m, idx->size());
  }
  if (a.json) std::printf("%s\n", out.dump().c_str());
}

void RegisterEval(CLI::App* app) {
  auto* cmd = app->add_subcommand(
      "eval",
      "Evaluate a model: AUC, logloss, normalized entropy, calibration; for a two_tower model, recall@K and NDCG@K "
      "of retrieving each positive row's item");
  auto a = std::make_shared<ScoreArgs>();
  auto ra = std::make_shared<RetrievalArgs>();
  AddScoreOptions(cmd, a.get());
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->add_option("--items", ra->items,
                  "two_tower: the catalogue to retrieve from, as item rows in the model's format (user columns may "
                  "be empty); searched exactly")
      ->check(CLI::ExistingFile);
  cmd->add_option("--index", ra->index, "two_tower: also retrieve from this index (embark index)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--k", ra->ks, "two_tower: the K of recall@K and NDCG@K, comma-separated [10,50,100]");
  cmd->add_option("--ef-search", ra->ef_search, "two_tower with an hnsw --index: its search list [the index's]")
      ->check(CLI::Range(1, 1 << 20));
  cmd->callback([a, ra] {
    const std::string family = CheckpointFamily(a->model);
    if (family == "two_tower") return EvalRetrieval(*a, *ra);
    if (!ra->items.empty() || !ra->index.empty())
      Fail("--items and --index evaluate a two_tower model; " + a->model + " holds model '" + family + "'");
    auto predictor = Unwrap(Predictor::Open(a->model, a->options()));
    Metrics m = Unwrap(predictor->Evaluate(a->data, a->max_bad_lines));
    if (a->json) {
      std::printf("%s\n", ToJson(m).dump().c_str());
    } else {
      PrintMetrics("eval", m);
    }
  });
}

void RegisterIndex(CLI::App* app) {
  auto* cmd = app->add_subcommand(
      "index",
      "Embed every item of --items with a two_tower model's item tower and build a vector index of them for "
      "retrieval (eval --index, serve --index)");
  auto a = std::make_shared<ScoreArgs>();
  auto ra = std::make_shared<RetrievalArgs>();
  auto kind = std::make_shared<std::string>("hnsw");
  auto ho = std::make_shared<HnswOptions>();
  cmd->add_option("--model", a->model, "Checkpoint directory of a two_tower model")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--items", ra->items,
                  "Item rows in the model's format (user columns may be empty; the training data gives every item "
                  "seen in training); the first row of an item gives its features")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", a->out, "Index directory to write (new, empty, or an index to replace)")->required();
  cmd->add_option("--kind", *kind, "hnsw (approximate, hnswlib) or exact (every item scored) [hnsw]")
      ->check(CLI::IsMember({"hnsw", "exact"}));
  cmd->add_option("--m", ho->M, "hnsw: links per item [16]")->check(CLI::Range(2, 512));
  cmd->add_option("--ef-construction", ho->ef_construction, "hnsw: search list while inserting [200]")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--ef-search", ho->ef_search, "hnsw: search list while searching, kept in the index [100]")
      ->check(CLI::Range(1, 1 << 20));
  AddScoringSettings(cmd, a.get(), "Threads embedding and inserting; 0 means one per core.");
  cmd->add_flag("--json", a->json, "Print one JSON object");
  auto update = std::make_shared<bool>(false);
  cmd->add_flag("--update", *update,
                "Add the items of --items to the index already in --out (an item already there gets its new "
                "vector and row) instead of building a new one; written atomically like a new index");
  cmd->callback([a, ra, kind, ho, update] {
    RetrievalModel r = OpenRetrieval(*a);
    const auto t0 = std::chrono::steady_clock::now();
    ItemCatalogue cat = Unwrap(EmbedItems(*r.ck.model, ra->items, r.pool.get(), a->max_bad_lines));
    const auto t1 = std::chrono::steady_clock::now();
    HnswOptions o = *ho;
    o.add_threads = r.pool->size();
    std::unique_ptr<VectorIndex> idx;
    size_t added = cat.size();
    if (*update) {
      // The index and its catalogue as they are, then the new items in place.
      idx = Unwrap(LoadIndex(a->out, r.ck.model->tower_dim()));
      ItemCatalogue old = Unwrap(ReadIndexItems(a->out));
      if (old.header != cat.header)
        Fail(ra->items.front() + ":1: the header differs from that of the items in " + a->out);
      if (Status st = idx->Add(cat.keys.data(), cat.vectors.data(), cat.size()); !st.ok()) Fail(st.message());
      std::unordered_map<uint64_t, size_t> at;
      for (size_t i = 0; i < old.size(); ++i) at.emplace(old.keys[i], i);
      added = 0;
      for (size_t i = 0; i < cat.size(); ++i) {
        auto it = at.find(cat.keys[i]);
        if (it != at.end()) {
          old.names[it->second] = cat.names[i];
          old.rows[it->second] = cat.rows[i];
          continue;
        }
        old.keys.push_back(cat.keys[i]);
        old.names.push_back(cat.names[i]);
        old.rows.push_back(cat.rows[i]);
        ++added;
      }
      old.dim = cat.dim;
      cat = std::move(old);
    } else {
      idx = Unwrap(BuildIndex(cat, *kind, o));
    }
    const auto t2 = std::chrono::steady_clock::now();
    const nlohmann::json source = {{"model", std::filesystem::absolute(a->model).lexically_normal().string()},
                                   {"step", r.ck.state.step},
                                   {"samples", r.ck.state.samples},
                                   {"tower_dim", r.ck.model->tower_dim()}};
    if (Status st = idx->Save(a->out, IndexExtras(cat, source.dump(2))); !st.ok()) Fail(st.message());
    const double embed_s = std::chrono::duration<double>(t1 - t0).count();
    const double build_s = std::chrono::duration<double>(t2 - t1).count();
    if (a->json) {
      std::printf("%s\n", nlohmann::json{{"items", cat.size()}, {"added", added}, {"kind", idx->kind()}, {"dim", idx->dim()},
                                         {"embed_seconds", embed_s}, {"build_seconds", build_s},
                                         {"memory_bytes", idx->memory_bytes()}, {"out", a->out}}
                              .dump()
                              .c_str());
    } else {
      std::printf("index: %zu items (%zu new) of dim %d, %s, embedded in %.2f s, built in %.2f s, %.1f MB in memory -> %s\n",
                  cat.size(), added, idx->dim(), idx->kind().c_str(), embed_s, build_s, idx->memory_bytes() / 1e6,
                  a->out.c_str());
    }
  });
}

// retrieve: each row's top K items of an index, as embark serve --index
// answers them.
void RegisterRetrieve(CLI::App* app) {
  auto* cmd = app->add_subcommand(
      "retrieve",
      "Write each input row's top K items of an index (embark index) by a two_tower model's user tower: one line per "
      "row, K pairs of item name and score (the logit u.v / temperature), tab-separated, best first");
  auto a = std::make_shared<ScoreArgs>();
  auto index = std::make_shared<std::string>();
  auto k = std::make_shared<int>(100);
  cmd->add_option("--model", a->model, "Checkpoint directory of a two_tower model")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--index", *index, "Index directory built from the model (embark index)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--data", a->data, "Rows in the model's format (item columns may be empty)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--k", *k, "Items per row")->capture_default_str()->check(CLI::Range(1, serve::kMaxTopK));
  cmd->add_option("--out", a->out, "Output file (written to a temporary name, then renamed)")->required();
  AddScoringSettings(cmd, a.get(), "Threads embedding the rows; 0 means one per core.");
  cmd->callback([a, index, k] {
    RetrievalModel r = OpenRetrieval(*a);
    const Model& model = *r.ck.model;
    Check(fs::CheckOutputFile(a->out, a->data, {{"the checkpoint --model", a->model}, {"the index --index", *index}}));
    auto idx = Unwrap(LoadIndex(*index, model.tower_dim()));
    ItemCatalogue cat = Unwrap(ReadIndexItems(*index));
    std::unordered_map<uint64_t, size_t> at;
    for (size_t i = 0; i < cat.size(); ++i) at.emplace(cat.keys[i], i);
    if (static_cast<size_t>(*k) > idx->size())
      Fail("--k " + std::to_string(*k) + ": the index holds " + std::to_string(idx->size()) + " items");
    std::vector<float> users = Unwrap(EmbedUsers(model, a->data, r.pool.get(), a->max_bad_lines));
    const size_t T = static_cast<size_t>(model.tower_dim()), n = users.size() / T, K = static_cast<size_t>(*k);
    std::string text;
    std::vector<uint64_t> ids;
    std::vector<float> scores;
    char buf[32];
    constexpr size_t kBlock = 256;
    for (size_t lo = 0; lo < n; lo += kBlock) {
      const size_t hi = std::min(n, lo + kBlock);
      ids.resize((hi - lo) * K);
      scores.resize(ids.size());
      Check(idx->Search(users.data() + lo * T, hi - lo, *k, ids.data(), scores.data()));
      for (size_t i = 0; i < ids.size(); ++i) {
        auto it = at.find(ids[i]);
        if (it == at.end()) Fail(*index + ": the index returned an item its items.tsv lacks (or fewer than --k)");
        std::snprintf(buf, sizeof(buf), "\t%.9g", model.TowerLogit(scores[i]));
        text += cat.names[it->second];
        text += buf;
        text += (i + 1) % K == 0 ? '\n' : '\t';
      }
    }
    Check(fs::WriteFileAtomic(a->out, text));
  });
}

void RegisterPredict(CLI::App* app) {
  auto* cmd = app->add_subcommand(
      "predict",
      "Write one click probability per input line (an empty line for a blank or skipped bad line, so output line k "
      "is input line k; a CSV header gets none)");
  auto a = std::make_shared<ScoreArgs>();
  AddScoreOptions(cmd, a.get());
  cmd->add_option("--out", a->out, "Output file (written to a temporary name, then renamed)")->required();
  cmd->callback([a] {
    auto predictor = Unwrap(Predictor::Open(a->model, a->options()));
    auto scores = Unwrap(predictor->PredictToFile(a->data, a->max_bad_lines, a->out));
    if (scores.bad_lines > 0)
      std::fprintf(stderr, "embark: skipped %lld bad line(s) (an empty output line for each); first: %s\n",
                   static_cast<long long>(scores.bad_lines), scores.bad_line_examples.front().c_str());
  });
}

int g_signal_pipe[2] = {-1, -1};

void RegisterServe(CLI::App* app) {
  auto* cmd = app->add_subcommand(
      "serve",
      "Answer predictions, or a two_tower model's top K items of an index, over HTTP (Open Inference Protocol / "
      "KServe v2), with micro-batching and hot reload");
  auto o = std::make_shared<serve::ServerOptions>();
  auto quiet = std::make_shared<bool>(false);
  auto max_body_mb = std::make_shared<double>(64);
  cmd->add_option("--model", o->model_dir,
                  "Checkpoint directory (watched for a newer checkpoint, and for the delta checkpoints of "
                  "embark train --stream, applied in place)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--name", o->name, "Model name in URLs (default: the directory's name)");
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--max-batch", o->max_batch_rows, "Most rows scored in one micro-batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-delay-us", o->max_delay_us, "Longest a request waits for others to batch with (microseconds)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000000));
  cmd->add_option("--workers", o->workers, "Scoring threads (0: one per core)")->capture_default_str()->check(CLI::Range(0, 1024));
  cmd->add_option_function<std::string>(
         "--memory-budget",
         [o](const std::string& v) {
           TrainConfig c;
           if (Status s = FindParam("memory_budget")->set(&c, v); !s.ok()) Fail("--memory-budget: " + s.message());
           o->memory_budget = c.memory_budget;
         },
         "RAM for the embedding tables, e.g. 4G; rows beyond it are read from disk under --table-dir "
         "(/metrics reports the cache's hits and misses). 0: every row in RAM. [0]")
      ->type_name("size");
  cmd->add_option("--table-dir", o->table_dir, "Directory for the rows beyond --memory-budget (scratch)");
  cmd->add_option("--index", o->index_dir,
                  "two_tower --model: answer each row's top k items of this index (embark index), watched like "
                  "--model; required for a two_tower model, refused for a ranking model")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--k", o->k, "Items answered per row when a request's parameters.k is not given")
      ->capture_default_str()
      ->check(CLI::Range(1, serve::kMaxTopK));
  cmd->add_option("--ranker", o->ranker_dir,
                  "A ranking checkpoint (any CTR family) that re-orders the k items retrieved from --index by its "
                  "probability; its columns come from the request (user columns) and the index's items.csv")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--http-threads", o->http_threads,
                  "Requests handled at once (POSTs; GETs are answered by the connection thread, and a connection "
                  "holds no thread while it is idle or still sending)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--max-connections", o->max_connections,
                  "Connections open at once; one more is answered 503 and closed (capped by the open-file limit)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--max-body-mb", *max_body_mb,
                  "Largest request body accepted (MiB), however it is framed (Content-Length or chunked); larger "
                  "gets 413")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1e6));
  cmd->add_option("--timeout", o->timeout_s,
                  "Seconds a connection may stay silent (idle between requests, stalled within one, or not reading "
                  "its answer) before it is closed")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--request-timeout", o->request_timeout_s,
                  "Seconds from a request's first byte to its last; a request not complete by then gets 408 and its "
                  "connection is closed")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--poll", o->poll_s,
                  "Seconds between checks of the model directory for a new snapshot or new deltas, and of --index "
                  "for a new index (0: reload only on SIGHUP or POST /v2/repository/models/NAME/load)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  auto token_file = std::make_shared<std::string>();
  cmd->add_option("--admin-token-file", *token_file,
                  "File holding the token that POST /v2/repository/models/NAME/load must send as "
                  "'Authorization: Bearer TOKEN' (without it, that endpoint is disabled)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--quiet", *quiet, "Log errors and warnings only");
  cmd->callback([o, quiet, max_body_mb, token_file] {
    o->max_body_bytes = static_cast<size_t>(*max_body_mb * 1048576.0);
    if (!token_file->empty()) {
      std::string t = Unwrap(fs::ReadFile(*token_file));
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(t.begin());
      if (t.size() < 16) Fail("--admin-token-file '" + *token_file + "': the token must be at least 16 characters");
      o->admin_token = t;
    }
    Logger log(*quiet ? LogLevel::kWarn : LogLevel::kInfo);
    InitBlas();
    // Request bodies up to --max-body-mb come and go: from 1 MiB up they get
    // their own mapping, returned to the system when freed. (glibc would
    // otherwise raise its mapping threshold after the first such free and
    // serve later ones from its heaps, whose freed holes stay resident:
    // a soak with 4 MiB bodies grew by 10 MB a minute that way.)
    ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
    // Few heaps for many handler threads: memory one thread frees is reused
    // by the next instead of staying resident in a heap of its own.
    ::mallopt(M_ARENA_MAX, 2);
    // Each connection holds a file descriptor: allow as many as the hard limit does.
    if (rlimit rl{}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      (void)::setrlimit(RLIMIT_NOFILE, &rl);
    }
    // Signal handlers only write the signal number to a pipe (any thread,
    // BLAS's included, may receive it); one thread acts on it: SIGHUP
    // reloads, SIGTERM/SIGINT drain and stop.
    if (::pipe(g_signal_pipe) != 0) Fail(std::string("cannot create a pipe for signals: ") + std::strerror(errno));
    struct sigaction sa {};
    sa.sa_handler = [](int sig) {
      const int saved = errno;
      const char c = static_cast<char>(sig);
      (void)!::write(g_signal_pipe[1], &c, 1);
      errno = saved;
    };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
    serve::Server server(*o, log);
    std::thread signals([&] {
      char c = 0;
      while (::read(g_signal_pipe[0], &c, 1) == 1 || errno == EINTR) {
        if (c == SIGHUP) {
          log.Log(LogLevel::kInfo, "SIGHUP: reloading");
          (void)server.Reload(true);
          continue;
        }
        if (c != 0) {
          log.Log(LogLevel::kInfo, "stopping: draining requests in flight");
          server.Shutdown();
        }
        return;
      }
    });
    Status st = server.Run();
    const char stop = 0;  // ends the signal thread
    (void)!::write(g_signal_pipe[1], &stop, 1);
    signals.join();
    Check(st);
    log.Log(LogLevel::kInfo, "stopped");
  });
}

void RegisterParams(CLI::App* app) {
  auto* cmd = app->add_subcommand("params", "List training parameters and whether --resume may change them (--markdown: docs/parameters.md)");
  auto md = std::make_shared<bool>(false);
  cmd->add_flag("--markdown", *md, "Print the Markdown table");
  cmd->callback([md] {
    if (*md) {
      std::printf("%s", ParamsMarkdown().c_str());
      return;
    }
    for (const ParamInfo& p : ListParams())
      std::printf("%-22s %-8s %-12s %-10s %s\n", p.name.c_str(), p.type.c_str(), p.default_value.c_str(),
                  p.fixed_on_resume ? "fixed" : "may-change", p.help.c_str());
  });
}

}  // namespace

void RegisterVerify(CLI::App* app) {
  auto* cmd = app->add_subcommand(
      "verify", "Check a checkpoint byte for byte against its manifest and print what it holds; exit 1 naming the "
                "file if anything is missing, truncated or corrupt");
  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("dir", *dir, "Checkpoint directory")->required();
  cmd->add_flag("--json", *json, "Print one JSON object");
  cmd->callback([dir, json] {
    const CheckpointInfo info = Unwrap(VerifyCheckpoint(*dir));
    nlohmann::json tables = nlohmann::json::array();
    for (const auto& t : info.tables)
      tables.push_back({{"name", t.name},
                        {"dim", t.dim},
                        {"rows", t.rows},
                        {"precision", t.precision},
                        {"memory_bytes", t.memory_bytes}});
    if (*json) {
      std::printf("%s\n", nlohmann::json{{"dir", info.dir},
                                         {"model", info.model},
                                         {"format", info.data_format},
                                         {"epochs_done", info.epochs_done},
                                         {"step", info.step},
                                         {"samples", info.samples},
                                         {"epoch_samples", info.epoch_samples},
                                         {"dense_params", info.dense_params},
                                         {"tables", tables}}
                               .dump()
                               .c_str());
      return;
    }
    const std::string into =
        info.epoch_samples > 0 ? " and " + std::to_string(info.epoch_samples) + " samples of the next" : "";
    std::printf("%s: ok: %s model on %s data, %d epoch(s)%s done, step %lld, %llu samples, %llu dense parameters\n",
                info.dir.c_str(), info.model.c_str(), info.data_format.c_str(), info.epochs_done, into.c_str(),
                static_cast<long long>(info.step), static_cast<unsigned long long>(info.samples),
                static_cast<unsigned long long>(info.dense_params));
    for (const auto& t : info.tables)
      std::printf("  table %s: %llu rows of %d %s weights, %llu bytes in RAM\n", t.name.c_str(),
                  static_cast<unsigned long long>(t.rows), t.dim, t.precision.c_str(),
                  static_cast<unsigned long long>(t.memory_bytes));
  });
}

void RegisterExport(CLI::App* app) {
  auto* cmd = app->add_subcommand(
      "export", "Write a serving copy of a checkpoint with int8 embedding rows (per-row fp32 scale and bias, no "
                "optimizer state) for predict, eval and serve; it cannot be trained on");
  auto a = std::make_shared<std::pair<std::string, std::string>>();
  auto precision = std::make_shared<std::string>("int8");
  cmd->add_option("checkpoint", a->first, "Checkpoint directory to export")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("out", a->second, "Output directory: new, or empty")->required();
  cmd->add_option("--row-precision", *precision, "Precision of the exported rows")
      ->check(CLI::IsMember({"int8"}))
      ->capture_default_str();
  cmd->callback([a, precision] {
    Check(ExportCheckpoint(a->first, a->second, *precision));
    const CheckpointInfo info = Unwrap(VerifyCheckpoint(a->second));
    uint64_t rows = 0;
    for (const auto& t : info.tables) rows += t.rows;
    std::printf("exported %s to %s: %llu rows as %s\n", a->first.c_str(), a->second.c_str(),
                static_cast<unsigned long long>(rows), precision->c_str());
  });
}

// ---- report ------------------------------------------------------------------
namespace {

// The drawing is done by python/embark/report.py (matplotlib); this finds it
// and runs it: $EMBARK_PYTHON_DIR, else <exe dir>/python (the build's copy),
// else <exe dir>/../python (the source tree, for a build/ inside it).
std::string FindReportScript() {
  namespace sfs = std::filesystem;
  std::vector<sfs::path> dirs;
  if (const char* d = std::getenv("EMBARK_PYTHON_DIR"); d != nullptr && *d != '\0') {
    dirs.emplace_back(d);
  } else {
    std::error_code ec;
    const sfs::path exe_dir = sfs::read_symlink("/proc/self/exe", ec).parent_path();
    if (ec) Fail("report: cannot find the running binary (/proc/self/exe): " + ec.message());
    dirs = {exe_dir / "python", exe_dir.parent_path() / "python"};
  }
  std::string looked;
  for (const sfs::path& d : dirs) {
    const sfs::path script = d / "embark" / "report.py";
    if (sfs::is_regular_file(script)) return script.string();
    looked += (looked.empty() ? "" : ", ") + script.string();
  }
  Fail("report: report.py not found (looked for " + looked +
       "); set EMBARK_PYTHON_DIR to the directory that holds embark/report.py");
}

void RegisterReport(CLI::App* app) {
  auto* cmd = app->add_subcommand(
      "report", "Draw a checkpoint's training history (history.json) with matplotlib: loss, AUC, logloss and "
                "calibration over the steps, a reliability diagram, and an index.html showing them");
  auto a = std::make_shared<std::pair<std::string, std::string>>();
  cmd->add_option("--model", a->first, "Checkpoint directory (reads its history.json)")->required();
  cmd->add_option("--out", a->second,
                  "Output directory: new, empty, or a previous report (replaced whole); any other is refused")
      ->required();
  cmd->footer(
      "Runs /usr/bin/python3 (or $EMBARK_PYTHON) on embark/report.py from $EMBARK_PYTHON_DIR, else from\n"
      "python/ beside the embark binary, else from ../python; needs python3-matplotlib. Exit status is the\n"
      "script's. See docs/report.md.");
  cmd->callback([a] {
    const std::string script = FindReportScript();
    const char* env_python = std::getenv("EMBARK_PYTHON");
    const std::string python = env_python != nullptr && *env_python != '\0' ? env_python : "/usr/bin/python3";
    std::vector<std::string> args = {python, script, "--model", a->first, "--out", a->second};
    std::vector<char*> argv;
    for (std::string& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    pid_t pid = 0;
    if (int err = ::posix_spawn(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ); err != 0)
      Fail("report: cannot run " + python + ": " + std::strerror(err));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) Fail(std::string("report: waiting for ") + python + ": " + std::strerror(errno));
    if (WIFSIGNALED(status)) Fail("report: " + python + " was killed by signal " + std::to_string(WTERMSIG(status)));
    if (WEXITSTATUS(status) != 0) std::exit(WEXITSTATUS(status));
  });
}

}  // namespace

void RegisterCommands(CLI::App* app) {
  RegisterGen(app);
  RegisterTrain(app);
  RegisterEval(app);
  RegisterIndex(app);
  RegisterPredict(app);
  RegisterRetrieve(app);
  RegisterServe(app);
  RegisterParams(app);
  RegisterVerify(app);
  RegisterExport(app);
  RegisterReport(app);
}

}  // namespace embark::cli
