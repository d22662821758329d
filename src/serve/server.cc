#include "serve/server.h"

#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <mutex>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "checkpoint/delta.h"
#include "serve/batcher.h"
#include "serve/http_front.h"
#include "serve/request.h"
#include "serve/topk.h"
#include "util/fs.h"

namespace embark::serve {
namespace {

// Compares in time independent of where the strings differ.
bool TokenMatches(const std::string& given, const std::string& expected) {
  unsigned diff = given.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i) diff |= static_cast<unsigned char>(expected[i]) ^
                                                     static_cast<unsigned char>(i < given.size() ? given[i] : 0);
  return diff == 0;
}

}  // namespace

namespace {

using Clock = std::chrono::steady_clock;

// Identifies the checkpoint's current contents cheaply: every entry's name,
// inode, size and modification time. A checkpoint swapped in by embark train
// (or copied over) changes it; a delta written into its deltas/ folder does
// not (deltas are applied in place, not by a full load).
std::string DirSignature(const std::string& dir) {
  std::string sig;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return sig;
  sig += std::to_string(st.st_ino) + ";";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return sig;
  std::vector<std::string> entries;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == "deltas") continue;
    struct stat fs {};
    if (::stat((dir + "/" + name).c_str(), &fs) != 0) continue;
    entries.push_back(name + ":" + std::to_string(fs.st_ino) + ":" + std::to_string(fs.st_size) + ":" +
                      std::to_string(fs.st_mtim.tv_sec) + "." + std::to_string(fs.st_mtim.tv_nsec));
  }
  ::closedir(d);
  std::sort(entries.begin(), entries.end());
  for (const auto& e : entries) sig += e + ";";
  return sig;
}

// httplib's request parser, router and response writer, used on complete
// requests in memory: the front end (http_front.h) owns the sockets.
class Router : public httplib::Server {
 public:
  using httplib::Server::process_request;
};

// One complete request to read (its head, then its body) and the answer
// written to memory.
class MemoryStream : public httplib::Stream {
 public:
  explicit MemoryStream(const FrontRequest& r) : r_(r), head_(r.http.Head()) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    size_t n = 0;
    if (pos_ < head_.size()) {
      n = head_.copy(ptr, size, pos_);
    } else {
      n = r_.http.body.copy(ptr, size, pos_ - head_.size());
    }
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = r_.remote_ip;
    port = r_.remote_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = r_.local_ip;
    port = r_.local_port;
  }
  // No descriptor: httplib has nothing to poll or check against FD_SETSIZE.
  socket_t socket() const override { return INVALID_SOCKET; }

  std::string out;

 private:
  const FrontRequest& r_;
  const std::string head_;
  size_t pos_ = 0;
};

std::string BaseName(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  size_t s = dir.rfind('/');
  std::string b = s == std::string::npos ? dir : dir.substr(s + 1);
  return b.empty() || b == "." || b == ".." ? "model" : b;
}

}  // namespace

// The served model's tables: rows, RAM and disk bytes, and for tables with
// a disk tier the cache's hits and misses.
void AppendTableMetrics(const Model& model, std::string* out) {
  std::string rows, mem, disk, hits, misses;
  char buf[256];
  for (int t = 0; t < model.num_tables(); ++t) {
    const StoreStats st = model.table(t)->stats();
    const std::string name = model.table(t)->config().name;
    auto line = [&](std::string* to, const char* metric, unsigned long long v) {
      std::snprintf(buf, sizeof(buf), "%s{table=\"%s\"} %llu\n", metric, name.c_str(), v);
      *to += buf;
    };
    line(&rows, "embark_table_rows", st.rows);
    line(&mem, "embark_table_memory_bytes", st.memory_bytes);
    line(&disk, "embark_table_disk_bytes", st.disk_bytes);
    line(&hits, "embark_table_cache_hits_total", st.hits);
    line(&misses, "embark_table_cache_misses_total", st.misses);
  }
  *out += "# HELP embark_table_rows Rows of each embedding table.\n# TYPE embark_table_rows gauge\n" + rows;
  *out += "# HELP embark_table_memory_bytes RAM of each embedding table.\n# TYPE embark_table_memory_bytes gauge\n" + mem;
  *out += "# HELP embark_table_disk_bytes Disk bytes of each embedding table (0 when all rows are in RAM).\n"
          "# TYPE embark_table_disk_bytes gauge\n" + disk;
  *out += "# HELP embark_table_cache_hits_total Row lookups answered from RAM by a table with a disk tier "
          "(--memory-budget).\n# TYPE embark_table_cache_hits_total counter\n" + hits;
  *out += "# HELP embark_table_cache_misses_total Row lookups that went to the disk tier.\n"
          "# TYPE embark_table_cache_misses_total counter\n" + misses;
}

struct Server::Impl {
  // Error bodies name the model, not where its files live on the server.
  std::string Redact(std::string msg) const {
    std::error_code ec;
    const std::pair<std::string, std::string> dirs[] = {
        {opt.model_dir, "<model " + opt.name + ">"}, {opt.index_dir, "<index>"}, {opt.ranker_dir, "<ranker>"}};
    for (const auto& [d, as] : dirs) {
      if (d.empty()) continue;
      for (std::string dir : {d, std::filesystem::absolute(d, ec).string()}) {
        while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
        if (dir.empty()) continue;
        for (size_t at; (at = msg.find(dir)) != std::string::npos;) msg.replace(at, dir.size(), as);
      }
    }
    return msg;
  }
  ServerOptions opt;
  const Logger& log;
  ServerMetrics metrics;
  std::unique_ptr<Batcher> batcher;
  Router http;
  std::unique_ptr<HttpFront> front;  // created by Run under stop_mu

  std::mutex model_mu;  // guards `current` and `index`
  std::shared_ptr<const ServedModel> current;
  std::shared_ptr<const ServedIndex> index;  // retrieval (--index): the index served with `current`
  std::unique_ptr<Ranker> ranker;            // --ranker, loaded once by Run
  std::mutex reload_mu;  // one reload or delta apply at a time; guards the reload state below
  std::string loaded_sig, failed_sig;
  int64_t next_version = 1;
  // A delta refused (0: none): neither it nor any after it is tried again
  // until a full load (deltas after a missing one would miss its rows).
  uint64_t refused_seq = 0;
  std::string index_loaded_sig, index_failed_sig;
  int64_t next_index_version = 1;
  // An index refused only for not fitting the model served: the next model
  // loaded in full is tried with it (an index and a model of a new
  // tower_dim, written one after the other).
  std::shared_ptr<const ServedIndex> unfit_index;

  std::atomic<bool> ready{false};
  std::atomic<int> bound_port{0};
  std::mutex stop_mu;  // guards `stopping` and the creation of `front`
  std::condition_variable stop_cv;
  bool stopping = false;

  Impl(const ServerOptions& o, const Logger& l) : opt(o), log(l) {}

  std::shared_ptr<const ServedModel> Current() {
    std::lock_guard<std::mutex> lock(model_mu);
    return current;
  }
  // The model and the index served with it, taken together.
  std::shared_ptr<const ServedModel> Current(std::shared_ptr<const ServedIndex>* idx) {
    std::lock_guard<std::mutex> lock(model_mu);
    *idx = index;
    return current;
  }

  // What a full load did besides loading the snapshot.
  struct LoadReport {
    uint64_t deltas_applied = 0;
    double written_unix = 0, newest_sample_unix = 0;  // of the last delta applied (0: none)
    Status delta_error;  // why the delta after it was refused
  };

  Result<std::shared_ptr<ServedModel>> Load(int64_t version, LoadReport* report) {
    if (opt.memory_budget > 0 && opt.table_dir.empty())
      return Status::InvalidArgument("--memory-budget keeps rows beyond it on disk: give --table-dir too");
    StorageOptions storage;
    storage.memory_budget = opt.memory_budget;
    // Two slots: a version loads while the one before it still serves; by
    // then the one before that is gone.
    if (opt.memory_budget > 0) storage.dir = opt.table_dir + "/slot-" + std::to_string(version % 2);
    // The snapshot and the deltas that follow it (LoadCheckpoint applies them).
    EMBARK_ASSIGN_OR_RETURN(auto ck, LoadCheckpoint(opt.model_dir, 0, 1, Env::Posix(), opt.memory_budget > 0 ? &storage : nullptr));
    auto m = std::make_shared<ServedModel>();
    m->model = std::move(ck.model);
    m->model->FreezeForInference();
    m->encoder = std::make_shared<const RowEncoder>(m->model->spec());
    m->version_str = std::to_string(version);
    const std::string family = m->model->config().model;
    if (m->model->tower_dim() > 0) {
      if (opt.index_dir.empty())
        return Status::InvalidArgument("model '" + family + "' is a retrieval model: serve it with --index DIR "
                                       "(an index built from it by embark index)");
      m->shape = std::make_shared<const RequestShape>(TopKShape(*m->encoder, m->model->spec(), ranker != nullptr));
      m->metadata_json = ModelMetadataJson(opt.name, m->version_str, *m->encoder, m->shape->given,
                                           TopKOutputsJson(opt.k, ranker != nullptr));
    } else if (!opt.index_dir.empty()) {
      return Status::InvalidArgument("--index serves the top k items of a two_tower model; model '" + family +
                                     "' is a ranking model (serve it without --index)");
    } else {
      m->metadata_json = ModelMetadataJson(opt.name, m->version_str, *m->encoder);
    }
    m->snapshot_id = ck.state.snapshot_id;
    m->delta_seq = ck.state.delta_seq;
    // Freshness of the last delta the load applied.
    report->written_unix = ck.delta_written_unix;
    report->newest_sample_unix = ck.delta_newest_sample_unix;
    report->deltas_applied = ck.deltas_applied;
    report->delta_error = ck.delta_error;
    return m;
  }

  // Checks the directory: a new snapshot is loaded in full (Load), new
  // deltas of the snapshot served are applied in place (ApplyDeltas).
  // With --index, the index directory too: a new one is loaded beside the
  // one served and swapped in with the model (or alone), once it fits it.
  Status Reload(bool force) {
    std::lock_guard<std::mutex> one(reload_mu);
    std::shared_ptr<const ServedIndex> next_index;
    Status index_st = LoadIndexIfChanged(force, &next_index);
    const std::string sig = DirSignature(opt.model_dir);
    Status st;
    if (force || (sig != loaded_sig && sig != failed_sig)) {
      if (!next_index && unfit_index && DirSignature(opt.index_dir) == unfit_index->dir_signature)
        next_index = unfit_index;
      st = FullReload(sig, &next_index);
    } else if (sig != failed_sig) {  // a broken snapshot: its deltas cannot apply either
      st = ApplyDeltas(sig);
    }
    if (next_index) index_st = SwapIndex(std::move(next_index));
    return st.ok() ? index_st : st;
  }

  // Loads the index directory when it changed (or always, with `force`);
  // a broken one is refused, counted and not tried again until it changes.
  Status LoadIndexIfChanged(bool force, std::shared_ptr<const ServedIndex>* out) {
    if (opt.index_dir.empty()) return Status::OK();
    const std::string sig = DirSignature(opt.index_dir);
    if (!force && (sig == index_loaded_sig || sig == index_failed_sig)) return Status::OK();
    auto cur = Current();
    if (!cur) return Status::OK();  // the first load reads it with the model (FullReload)
    auto loaded = LoadServedIndex(opt.index_dir, cur->model->spec(), ranker.get(), next_index_version);
    if (!loaded.ok()) {
      unfit_index.reset();
      return RefuseIndex(sig, loaded.status());
    }
    auto idx = std::move(loaded).value();
    idx->dir_signature = sig;
    *out = std::move(idx);
    return Status::OK();
  }

  Status RefuseIndex(const std::string& sig, const Status& why) {
    index_failed_sig = sig;
    index_loaded_sig.clear();
    metrics.CountIndexReload(false);
    if (next_index_version > 1)  // the first load's failure is Run's error
      log.Log(LogLevel::kError, "index %s refused, still serving index version %lld: %s", opt.index_dir.c_str(),
              static_cast<long long>(next_index_version - 1), why.message().c_str());
    return why;
  }

  // Swaps in an index loaded by LoadIndexIfChanged once it fits the model
  // served (FullReload may have swapped it in with a new model already).
  Status SwapIndex(std::shared_ptr<const ServedIndex> idx) {
    auto cur = Current();
    if (!cur) return Status::OK();
    if (Status st = CheckServable(*cur->model, *idx, ranker.get()); !st.ok()) {
      unfit_index = idx;
      return RefuseIndex(idx->dir_signature, Status::InvalidArgument(opt.index_dir + ": " + st.message()));
    }
    {
      std::lock_guard<std::mutex> lock(model_mu);
      index = idx;
    }
    IndexServed(*idx);
    return Status::OK();
  }

  void IndexServed(const ServedIndex& idx) {
    index_loaded_sig = idx.dir_signature;
    index_failed_sig.clear();
    unfit_index.reset();
    metrics.CountIndexReload(true);
    metrics.SetIndexVersion(next_index_version);
    log.Log(LogLevel::kInfo, "serving index %s version %lld (%zu items, %s)", opt.index_dir.c_str(),
            static_cast<long long>(next_index_version), idx.index->size(), idx.index->kind().c_str());
    ++next_index_version;
  }

  // Loads the checkpoint in full and swaps it in, with *next_index when
  // that is set and fits it (then *next_index is reset).
  Status FullReload(const std::string& sig, std::shared_ptr<const ServedIndex>* next_index = nullptr) {
    const int64_t version = next_version;
    LoadReport report;
    auto loaded = Load(version, &report);
    // A two-tower model must fit the index it is served with: the new
    // index, else the one served.
    bool with_next = false;
    if (loaded.ok() && loaded.value()->shape) {
      std::shared_ptr<const ServedIndex> served;
      (void)Current(&served);
      Status fits;
      bool index_broken = false;
      if (!served && next_index != nullptr && !*next_index) {
        // The first load: the index is read with this model's data spec
        // (the catalogue's CSV separator).
        const std::string isig = DirSignature(opt.index_dir);
        auto idx = LoadServedIndex(opt.index_dir, loaded.value()->model->spec(), ranker.get(), next_index_version);
        if (idx.ok()) {
          idx.value()->dir_signature = isig;
          *next_index = std::move(idx).value();
        } else {
          fits = RefuseIndex(isig, idx.status());
          index_broken = true;
        }
      }
      const ServedIndex* candidate = next_index != nullptr && *next_index ? next_index->get() : served.get();
      if (fits.ok())
        fits = candidate != nullptr ? CheckServable(*loaded.value()->model, *candidate, ranker.get())
                                    : Status::InvalidArgument("no index to serve it with");
      with_next = fits.ok() && candidate != served.get();
      if (!fits.ok() && served && candidate != served.get()) {
        fits = CheckServable(*loaded.value()->model, *served, ranker.get());
      }
      if (!fits.ok()) loaded = index_broken ? fits : Status::InvalidArgument(opt.model_dir + ": " + fits.message());
    }
    if (!loaded.ok()) {
      failed_sig = sig;
      metrics.CountReload(false);
      if (version > 1)  // the first load's failure is Run's error
        log.Log(LogLevel::kError, "reload of %s refused, still serving version %lld: %s", opt.model_dir.c_str(),
                static_cast<long long>(version - 1), loaded.status().message().c_str());
      return loaded.status();
    }
    std::shared_ptr<const ServedModel> m = std::move(loaded).value();
    std::shared_ptr<const ServedIndex> swapped;
    if (with_next) swapped = std::move(*next_index);
    {
      std::lock_guard<std::mutex> lock(model_mu);
      current = m;
      if (swapped) index = swapped;
    }
    if (swapped) IndexServed(*swapped);
    metrics.SetDeltaSeq(m->delta_seq);
    if (report.deltas_applied > 0)
      metrics.DeltasApplied(report.deltas_applied, m->delta_seq, report.written_unix,
                            report.newest_sample_unix, -1);
    refused_seq = 0;
    if (!report.delta_error.ok()) {
      refused_seq = m->delta_seq + 1;
      metrics.CountDeltaFailed();
      log.Log(LogLevel::kError, "delta %llu of %s refused; serving version %lld with deltas to %llu (later deltas "
                                "wait for the next snapshot): %s",
              static_cast<unsigned long long>(refused_seq), opt.model_dir.c_str(), static_cast<long long>(version),
              static_cast<unsigned long long>(m->delta_seq), report.delta_error.message().c_str());
    }
    m.reset();
    loaded_sig = sig;
    failed_sig.clear();
    ++next_version;
    metrics.CountReload(true);
    metrics.SetModelVersion(version);
    // The previous model's memory (freed above, or by the last request that
    // held it, before the next reload) goes back to the system.
    ::malloc_trim(0);
    log.Log(LogLevel::kInfo, "serving %s version %lld", opt.model_dir.c_str(), static_cast<long long>(version));
    return Status::OK();
  }

  // A delta not applied: counted and logged once (it is not tried again).
  Status RefuseDelta(const ServedModel& cur, uint64_t seq, const Status& why) {
    refused_seq = seq;
    metrics.CountDeltaFailed();
    log.Log(LogLevel::kError, "delta %llu of %s refused, still serving version %s with deltas to %llu (later deltas "
                              "wait for the next snapshot): %s",
            static_cast<unsigned long long>(seq), opt.model_dir.c_str(), cur.version_str.c_str(),
            static_cast<unsigned long long>(cur.delta_seq), why.message().c_str());
    return why;
  }

  // Applies in place, in order, the deltas of the directory that follow the
  // model served: each is verified whole (Delta::Open) before anything
  // changes; its rows go into the served tables (safe under concurrent
  // reads), its dense weights into a new model sharing those tables, frozen
  // and swapped in. A delta of another snapshot, or after a gap, means a
  // new snapshot is being swapped in: loaded in full once it is there.
  Status ApplyDeltas(const std::string& sig) {
    std::shared_ptr<const ServedModel> cur = Current();
    if (!cur) return Status::OK();
    auto listed = ListDeltas(opt.model_dir);
    if (!listed.ok()) return listed.status();
    for (const uint64_t seq : listed.value()) {
      if (seq <= cur->delta_seq) continue;
      if (refused_seq != 0 && seq >= refused_seq) break;
      // Anything not following the model served: a new snapshot (with its
      // own deltas) may have been swapped in since `sig` was taken.
      auto changed = [&] { return DirSignature(opt.model_dir) != sig; };
      if (seq != cur->delta_seq + 1) {
        if (changed()) return FullReload(DirSignature(opt.model_dir));
        return RefuseDelta(*cur, seq, Status::NotFound("delta " + std::to_string(seq) + " follows delta " +
                                                       std::to_string(cur->delta_seq) + ": the deltas between are missing"));
      }
      const auto t0 = Clock::now();
      auto opened = Delta::Open(opt.model_dir, seq, *cur->model);
      if (!opened.ok()) {
        if (changed()) return FullReload(DirSignature(opt.model_dir));
        return RefuseDelta(*cur, seq, opened.status());
      }
      const Delta& d = *opened.value();
      if (d.info().base != cur->snapshot_id) {
        if (changed()) return FullReload(DirSignature(opt.model_dir));
        return RefuseDelta(*cur, seq, Status::Corruption("delta " + std::to_string(seq) + " applies to snapshot '" +
                                                         d.info().base + "', not to the one served ('" +
                                                         cur->snapshot_id + "')"));
      }
      EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<Model> next, cur->model->ShareTables());
      if (Status st = d.Apply(next.get()); !st.ok()) {
        // Some rows are in the served tables: the model is none the trainer
        // wrote. Load the directory in full (or keep what is served if that
        // fails too, as any failed reload does).
        (void)RefuseDelta(*cur, seq, st);
        return FullReload(DirSignature(opt.model_dir));
      }
      next->FreezeForInference();
      auto m = std::make_shared<ServedModel>();
      m->model = std::move(next);
      m->encoder = cur->encoder;
      m->version_str = cur->version_str;
      m->metadata_json = cur->metadata_json;
      m->shape = cur->shape;
      m->snapshot_id = cur->snapshot_id;
      m->delta_seq = seq;
      {
        std::lock_guard<std::mutex> lock(model_mu);
        current = m;
      }
      cur = std::move(m);
      const double took = std::chrono::duration<double>(Clock::now() - t0).count();
      metrics.DeltasApplied(1, seq, d.info().written_unix, d.info().newest_sample_unix, took);
      log.Log(LogLevel::kDebug, "applied delta %llu (%llu rows) in %.1f ms", static_cast<unsigned long long>(seq),
              static_cast<unsigned long long>(d.info().rows), took * 1e3);
    }
    return Status::OK();
  }

  // One complete request through httplib's router, answered in memory.
  FrontResponse Handle(const FrontRequest& r) {
    MemoryStream strm(r);
    bool closed = false;
    const bool ok = http.process_request(strm, r.close, closed, nullptr);
    return {std::move(strm.out), r.close || closed || !ok};
  }

  void Reply(httplib::Response& res, int status, const std::string& body, const char* endpoint,
             const char* type = "application/json") {
    res.status = status;
    res.set_content(body, type);
    metrics.CountRequest(endpoint, status);
  }

  void Routes() {
    http.Get("/v2/health/live", [this](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, "{\"live\":true}", "live");
    });
    http.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
      const bool r = ready;
      Reply(res, r ? 200 : 503, r ? "{\"ready\":true}" : "{\"ready\":false}", "ready");
    });
    http.Get("/v2", [this](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, "{\"name\":\"embark\",\"version\":\"0.1.0\",\"extensions\":[\"model_repository\"]}", "server");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 200;
      metrics.CountRequest("metrics", 200);
      std::string text = metrics.Render();
      if (auto m = Current()) AppendTableMetrics(*m->model, &text);
      res.set_content(text, "text/plain; version=0.0.4");
    });
    // Model metadata and readiness; the version segment is optional.
    http.Get(R"(/v2/models/([^/]+)(/versions/([^/]+))?(/ready)?)", [this](const httplib::Request& req,
                                                                         httplib::Response& res) {
      auto m = Current();
      const bool ready_path = req.matches[4].length() > 0;
      const char* ep = ready_path ? "model_ready" : "metadata";
      if (!m || !ready) return Reply(res, 503, ErrorJson("the model is not ready"), ep);
      if (req.matches[1] != opt.name) return Reply(res, 404, ErrorJson("unknown model '" + std::string(req.matches[1]) + "'"), ep);
      if (req.matches[3].length() > 0 && req.matches[3] != m->version_str)
        return Reply(res, 404, ErrorJson("model '" + opt.name + "' has no version " + std::string(req.matches[3]) +
                                         " (serving " + m->version_str + ")"), ep);
      if (ready_path)
        return Reply(res, 200, nlohmann::json{{"name", opt.name}, {"ready", true}}.dump(-1, ' ', false,
                                                                                     nlohmann::json::error_handler_t::replace),
                     ep);
      Reply(res, 200, m->metadata_json, ep);
    });
    http.Post(R"(/v2/models/([^/]+)(/versions/([^/]+))?/infer)", [this](const httplib::Request& req,
                                                                       httplib::Response& res) { Infer(req, res); });
    // The model repository extension's load: reload the checkpoint now.
    http.Post(R"(/v2/repository/models/([^/]+)/load)", [this](const httplib::Request& req, httplib::Response& res) {
      if (opt.admin_token.empty())
        return Reply(res, 403, ErrorJson("the load endpoint is disabled: start embark serve with --admin-token-file"),
                     "load");
      if (!TokenMatches(req.get_header_value("Authorization"), "Bearer " + opt.admin_token))
        return Reply(res, 401, ErrorJson("the load endpoint needs 'Authorization: Bearer <admin token>'"), "load");
      if (req.matches[1] != opt.name) return Reply(res, 404, ErrorJson("unknown model '" + std::string(req.matches[1]) + "'"), "load");
      Status st = Reload(true);
      if (!st.ok())
        return Reply(res, 500, ErrorJson("reload refused, still serving the previous version: " + Redact(st.message())),
                     "load");
      std::shared_ptr<const ServedIndex> idx;
      nlohmann::json answer = {{"version", Current(&idx)->version_str}};
      if (idx) answer["index_version"] = idx->version_str;
      Reply(res, 200, answer.dump(), "load");
    });
    http.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;  // a handler already wrote its JSON error
      std::string msg = res.status == 404   ? "no such endpoint"
                        : res.status == 413 ? "request body is larger than the limit of " +
                                                  std::to_string(opt.max_body_bytes) + " bytes"
                        : res.status == 405 ? "method not allowed"
                        : res.status == 400 ? "malformed HTTP request (request line, headers or body framing)"
                                            : "request failed with HTTP status " + std::to_string(res.status);
      res.set_content(ErrorJson(msg), "application/json");
      metrics.CountRequest("other", res.status);
    });
    http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what += std::string(": ") + e.what();
      } catch (...) {
      }
      log.Log(LogLevel::kError, "%s", what.c_str());
      Reply(res, 500, ErrorJson(what), "other");
    });
  }

  void Infer(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    std::shared_ptr<const ServedIndex> idx;
    auto m = Current(&idx);
    if (!m || !ready) return Reply(res, 503, ErrorJson("the model is not ready"), "infer");
    if (req.matches[1] != opt.name)
      return Reply(res, 404, ErrorJson("unknown model '" + std::string(req.matches[1]) + "'"), "infer");
    if (req.matches[3].length() > 0 && req.matches[3] != m->version_str)
      return Reply(res, 404, ErrorJson("model '" + opt.name + "' has no version " + std::string(req.matches[3]) +
                                       " (serving " + m->version_str + ")"), "infer");
    if (m->shape) return InferTopK(req, res, m, *idx, t0);
    InferRequest ir;
    Batch batch;
    if (auto e = ParseInferRequest(req.body, *m->encoder, &ir, &batch); !e.empty())
      return Reply(res, 400, ErrorJson(e), "infer");
    std::vector<float> probs(batch.size());
    if (Status st = batcher->Score(m, batch, probs.data()); !st.ok())
      return Reply(res, 500, ErrorJson(st.message()), "infer");
    // JSON has no NaN or infinity: a model that gives one is answered with
    // an error, never with a body a client cannot parse.
    for (size_t i = 0; i < probs.size(); ++i)
      if (!std::isfinite(probs[i]))
        return Reply(res, 500,
                     ErrorJson("the model gave a non-finite probability for row " + std::to_string(i) +
                               " (its weights are not finite: retrain it with a lower learning rate)"),
                     "infer");
    Reply(res, 200, InferResponseJson(opt.name, m->version_str, ir.id, probs.data(), probs.size()), "infer");
    metrics.ObserveInferLatency(std::chrono::duration<double>(Clock::now() - t0).count());
  }

  // A two-tower model's request: the user vectors (the model's forward)
  // and the index search run on the request's own thread; with --ranker,
  // the candidates' rows are scored through the batcher.
  void InferTopK(const httplib::Request& req, httplib::Response& res, const std::shared_ptr<const ServedModel>& m,
                 const ServedIndex& idx, Clock::time_point t0) {
    InferRequest ir;
    Batch batch;
    if (auto e = ParseInferRequest(req.body, *m->encoder, *m->shape, &ir, &batch); !e.empty())
      return Reply(res, 400, ErrorJson(e), "infer");
    const int64_t limit = std::min<int64_t>(kMaxTopK, static_cast<int64_t>(idx.index->size()));
    const int64_t k = ir.k > 0 ? ir.k : opt.k;
    if (k > limit)
      return Reply(res, 400,
                   ErrorJson("parameter 'k' is " + std::to_string(k) + ": at most " + std::to_string(limit) +
                             (limit == kMaxTopK ? " (the most a request may ask for)" : " (the items in the index)")),
                   "infer");
    const int kk = static_cast<int>(k);
    std::vector<uint32_t> items;
    std::vector<float> scores;
    if (Status st = RetrieveTopK(*m->model, idx, batch, kk, &items, &scores); !st.ok())
      return Reply(res, 500, ErrorJson(Redact(st.message())), "infer");
    auto finite = [&](const std::vector<float>& v, const char* what) {
      for (float x : v)
        if (!std::isfinite(x)) {
          Reply(res, 500, ErrorJson(std::string("the ") + what + " gave a non-finite score (its weights are not finite)"),
                "infer");
          return false;
        }
      return true;
    };
    if (!finite(scores, "model")) return;
    if (!ranker) {
      Reply(res, 200, TopKResponseJson(opt.name, m->version_str, ir.id, idx, items.data(), scores.data(), nullptr,
                                       ir.rows, kk),
            "infer");
      return metrics.ObserveInferLatency(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    Batch rows;
    if (auto e = RankerRows(*ranker, *m->encoder, m->model->spec(), ir, idx, items, kk, &rows); !e.empty())
      return Reply(res, 400, ErrorJson(e), "infer");
    std::vector<float> probs(rows.size());
    if (Status st = batcher->Score(ranker->model, rows, probs.data()); !st.ok())
      return Reply(res, 500, ErrorJson(Redact(st.message())), "infer");
    if (!finite(probs, "ranker")) return;
    OrderByRanker(ir.rows, kk, &items, &probs, &scores);
    Reply(res, 200, TopKResponseJson(opt.name, m->version_str, ir.id, idx, items.data(), probs.data(), scores.data(),
                                     ir.rows, kk),
          "infer");
    metrics.ObserveInferLatency(std::chrono::duration<double>(Clock::now() - t0).count());
  }
};

Server::Server(const ServerOptions& opt, const Logger& log) : impl_(std::make_unique<Impl>(opt, log)) {
  if (impl_->opt.name.empty()) impl_->opt.name = BaseName(opt.model_dir);
}

Server::~Server() = default;

int Server::port() const { return impl_->bound_port; }

Status Server::Reload(bool force) { return impl_->Reload(force); }

void Server::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    impl_->stopping = true;
    impl_->ready = false;
    if (impl_->front) impl_->front->Stop();
  }
  impl_->stop_cv.notify_all();
}

Status Server::Run() {
  Impl& s = *impl_;
  if (!s.opt.ranker_dir.empty()) {
    if (s.opt.index_dir.empty())
      return Status::InvalidArgument("--ranker re-orders the top k items of --index: give --index too");
    EMBARK_ASSIGN_OR_RETURN(s.ranker, LoadRanker(s.opt.ranker_dir));
  }
  EMBARK_RETURN_IF_ERROR(s.Reload(true));
  BatcherOptions bo;
  bo.max_batch_rows = s.opt.max_batch_rows;
  bo.max_delay = std::chrono::microseconds(s.opt.max_delay_us);
  bo.workers = s.opt.workers > 0 ? s.opt.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  s.batcher = std::make_unique<Batcher>(bo, &s.metrics);

  // The front end enforces the body limit and the idle timeout; httplib
  // checks the body again and writes the timeout into its Keep-Alive
  // header. No request count closes a connection.
  s.http.set_payload_max_length(s.opt.max_body_bytes);
  s.http.set_keep_alive_timeout(s.opt.timeout_s);
  s.http.set_keep_alive_max_count(1000000);
  s.Routes();

  FrontOptions fo;
  fo.host = s.opt.host;
  fo.port = s.opt.port;
  fo.handler_threads = std::max(1, s.opt.http_threads);
  fo.max_connections = s.opt.max_connections;
  fo.idle_timeout_s = s.opt.timeout_s;
  fo.request_timeout_s = s.opt.request_timeout_s;
  fo.limits.max_body_bytes = s.opt.max_body_bytes;
  {
    std::lock_guard<std::mutex> lock(s.stop_mu);
    s.front = std::make_unique<HttpFront>(fo, [&s](const FrontRequest& r) { return s.Handle(r); }, &s.metrics, s.log);
    if (s.stopping) s.front->Stop();
  }
  EMBARK_RETURN_IF_ERROR(s.front->Bind());
  const int port = s.front->port();
  s.bound_port = port;
  s.ready = true;
  s.log.Log(LogLevel::kInfo, "serving model '%s' at http://%s:%d/v2/models/%s", s.opt.name.c_str(),
            s.opt.host.c_str(), port, s.opt.name.c_str());

  // Watches the checkpoint directory while serving.
  std::thread watcher([&s] {
    // Its work (checks, delta applies, reloads) runs behind the requests:
    // 10 nice levels below the server's other threads (Linux niceness is
    // per thread), it gets the CPU that scoring leaves.
    const id_t tid = static_cast<id_t>(::syscall(SYS_gettid));
    errno = 0;
    const int nice = ::getpriority(PRIO_PROCESS, tid);
    if (errno == 0) (void)::setpriority(PRIO_PROCESS, tid, std::min(19, nice + 10));
    std::unique_lock<std::mutex> lock(s.stop_mu);
    while (!s.stopping) {
      if (s.opt.poll_s > 0) {
        s.stop_cv.wait_for(lock, std::chrono::duration<double>(s.opt.poll_s));
      } else {
        s.stop_cv.wait(lock);
      }
      if (s.stopping) break;
      lock.unlock();
      (void)s.Reload(false);  // failures are logged and counted
      lock.lock();
    }
  });
  // Returns once stopped with every begun request answered; then score
  // what is still queued.
  const Status served = s.front->Serve();
  {
    std::lock_guard<std::mutex> lock(s.stop_mu);
    s.stopping = true;
    s.ready = false;
  }
  s.stop_cv.notify_all();
  watcher.join();
  s.batcher->Stop();
  return served;
}

}  // namespace embark::serve
