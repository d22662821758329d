#include "checkpoint/delta.h"

#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

#include "checkpoint/files.h"
#include "checkpoint/table_file.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/json.h"

namespace embark {
namespace {

constexpr int kDeltaVersion = 1;
constexpr size_t kSeqDigits = 12;

std::string SeqName(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%012" PRIu64, seq);
  return buf;
}

// A delta folder's name: exactly 12 digits.
bool ParseSeqName(const std::string& name, uint64_t* seq) {
  if (name.size() != kSeqDigits || name.find_first_not_of("0123456789") != std::string::npos) return false;
  *seq = std::stoull(name);
  return *seq > 0;
}

}  // namespace

std::string DeltasDir(const std::string& dir) { return dir + "/deltas"; }
std::string DeltaDir(const std::string& dir, uint64_t seq) { return DeltasDir(dir) + "/" + SeqName(seq); }

Result<uint64_t> WriteDelta(const std::string& dir, const Model& model, const std::vector<std::vector<uint64_t>>& keys,
                            const DenseOptState& opt, const DeltaInfo& info, Env* env) {
  if (static_cast<int>(keys.size()) != model.num_tables())
    return Status::InvalidArgument("WriteDelta: " + std::to_string(keys.size()) + " key lists for " +
                                   std::to_string(model.num_tables()) + " tables");
  if (info.seq == 0) return Status::InvalidArgument("WriteDelta: delta sequence numbers start at 1");
  const std::string parent = DeltasDir(dir);
  const std::string final_dir = DeltaDir(dir, info.seq);
  if (env->FileExists(final_dir)) return Status::InvalidArgument(final_dir + " exists already");
  const std::string staging = parent + "/.tmp-" + SeqName(info.seq) + "-" + std::to_string(::getpid());
  EMBARK_RETURN_IF_ERROR(env->CreateDirs(parent));
  EMBARK_RETURN_IF_ERROR(env->RemoveAll(staging));
  EMBARK_RETURN_IF_ERROR(env->CreateDirs(staging));

  auto write = [&]() -> Result<uint64_t> {
    nlohmann::json files = nlohmann::json::object();
    uint64_t total = 0, rows_written = 0;
    // Rows: read whole (weights, state, metadata) in blocks; a key whose row
    // is gone (expired since) is skipped.
    RowBatch b;
    std::vector<float> rows;
    std::vector<RowMeta> meta;
    const std::unique_ptr<bool[]> found(new bool[kTableBlockRows]);
    for (int t = 0; t < model.num_tables(); ++t) {
      RowStore& store = *model.table(t);
      const size_t width = static_cast<size_t>(store.row_width());
      const std::string name = store.config().name + ".bin";
      EMBARK_ASSIGN_OR_RETURN(auto w, TableFileWriter::Create(env, staging + "/" + name, store.dim(), store.row_width()));
      const std::vector<uint64_t>& k = keys[t];
      for (size_t at = 0; at < k.size(); at += kTableBlockRows) {
        const size_t n = std::min<size_t>(kTableBlockRows, k.size() - at);
        rows.resize(n * width);
        meta.resize(n);
        EMBARK_RETURN_IF_ERROR(store.Read(k.data() + at, n, rows.data(), meta.data(), found.get()));
        b.clear();
        for (size_t i = 0; i < n; ++i) {
          if (!found[i]) continue;
          b.keys.push_back(k[at + i]);
          b.rows.insert(b.rows.end(), rows.begin() + i * width, rows.begin() + (i + 1) * width);
          b.meta.push_back(meta[i]);
        }
        if (b.size() > 0) EMBARK_RETURN_IF_ERROR(w->Add(b.keys.data(), b.size(), b.rows.data(), b.meta.data()));
        rows_written += b.size();
      }
      EMBARK_RETURN_IF_ERROR(w->Finish());
      files[name] = ManifestEntry(w->bytes(), w->checksum());
      total += w->bytes();
    }
    TrainerState st = info.state;
    st.delta_seq = info.seq;
    st.snapshot_id = info.base;
    const std::pair<const char*, std::string> small[] = {{"dense.bin", EncodeDense(model, opt)},
                                                         {"trainer.json", TrainerStateJson(st).dump(2)}};
    for (const auto& [name, data] : small) {
      EMBARK_RETURN_IF_ERROR(fs::WriteFileAtomic(staging + "/" + name, data, env));
      files[name] = ManifestEntry(data.size(), Checksum(data.data(), data.size()));
      total += data.size();
    }
    nlohmann::json manifest = {{"format", "embark-delta"},
                               {"version", kDeltaVersion},
                               {"seq", info.seq},
                               {"base", info.base},
                               {"written_unix", info.written_unix},
                               {"newest_sample_unix", info.newest_sample_unix},
                               {"rows", rows_written},
                               {"files", files}};
    const std::string text = manifest.dump(2);
    // The manifest last (its AtomicFile syncs the staging folder), then the
    // rename that publishes the delta, then the rename made durable.
    EMBARK_RETURN_IF_ERROR(fs::WriteFileAtomic(staging + "/MANIFEST.json", text, env));
    EMBARK_RETURN_IF_ERROR(env->RenameFile(staging, final_dir));
    EMBARK_RETURN_IF_ERROR(env->SyncDir(parent));
    return total + text.size();
  };
  auto written = write();
  if (!written.ok()) (void)env->RemoveAll(staging);
  return written;
}

Result<std::vector<uint64_t>> ListDeltas(const std::string& dir, Env* env) {
  std::vector<uint64_t> out;
  const std::string parent = DeltasDir(dir);
  if (!env->FileExists(parent)) return out;
  EMBARK_ASSIGN_OR_RETURN(std::vector<std::string> names, env->ListDir(parent));
  for (const std::string& name : names) {
    uint64_t seq = 0;
    if (ParseSeqName(name, &seq)) out.push_back(seq);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::unique_ptr<Delta>> Delta::Open(const std::string& dir, uint64_t seq, const Model& model, Env* env) {
  std::unique_ptr<Delta> d(new Delta());
  d->env_ = env;
  d->path_ = DeltaDir(dir, seq);
  const std::string mpath = d->path_ + "/MANIFEST.json";
  auto mtext = env->ReadFileToString(mpath);
  if (!mtext.ok()) return Status::Corruption("delta " + d->path_ + " has no readable MANIFEST.json: " + mtext.status().message());
  std::map<std::string, FileEntry> files;
  try {
    nlohmann::json m = nlohmann::json::parse(mtext.value());
    if (m.at("format").get<std::string>() != "embark-delta") return Status::Corruption(mpath + ": not an embark delta");
    const int version = IntAt<int>(m, "version");
    if (version != kDeltaVersion)
      return Status::Corruption(mpath + ": delta format version " + std::to_string(version) +
                                " is not supported (this build reads version " + std::to_string(kDeltaVersion) + ")");
    d->info_.seq = IntAt<uint64_t>(m, "seq");
    if (d->info_.seq != seq)
      return Status::Corruption(mpath + ": says it is delta " + std::to_string(d->info_.seq) + ", its folder says " +
                                std::to_string(seq));
    d->info_.base = m.at("base").get<std::string>();
    d->info_.written_unix = m.at("written_unix").get<double>();
    d->info_.newest_sample_unix = m.at("newest_sample_unix").get<double>();
    d->info_.rows = IntAt<uint64_t>(m, "rows");
    for (auto& [name, meta] : m.at("files").items())
      files[name] = {IntAt<uint64_t>(meta, "bytes"), meta.at("xxh64").get<std::string>()};
  } catch (const std::exception& e) {
    return Status::Corruption(mpath + ": unreadable (" + e.what() + ")");
  }
  EMBARK_RETURN_IF_ERROR(CheckListedFiles(env, d->path_, files, "delta"));
  for (const char* required : {"dense.bin", "trainer.json"})
    if (!files.count(required)) return Status::Corruption(d->path_ + ": delta lacks " + required);
  EMBARK_ASSIGN_OR_RETURN(std::string dense, ReadVerified(env, d->path_ + "/dense.bin", files["dense.bin"]));
  d->dense_.resize(model.params().size());
  EMBARK_RETURN_IF_ERROR(DecodeDense(dense, d->path_ + "/dense.bin", d->dense_.size(), d->dense_.data(), &d->opt_));
  for (float v : d->dense_)
    if (!std::isfinite(v)) return Status::Corruption(d->path_ + "/dense.bin: holds a value that is not finite");
  EMBARK_ASSIGN_OR_RETURN(std::string st, ReadVerified(env, d->path_ + "/trainer.json", files["trainer.json"]));
  try {
    d->info_.state = TrainerStateFromJson(nlohmann::json::parse(st));
  } catch (const std::exception& e) {
    return Status::Corruption(d->path_ + "/trainer.json: unreadable (" + e.what() + ")");
  }
  // Every table file: a table of the model, its rows' shape, and every
  // block's checksum and the whole file's, read through once now.
  uint64_t rows = 0;
  for (const auto& [name, e] : files) {
    if (name == "dense.bin" || name == "trainer.json") continue;
    const std::string path = d->path_ + "/" + name;
    const int t = name.size() > 4 && name.compare(name.size() - 4, 4, ".bin") == 0
                      ? model.table_index(name.substr(0, name.size() - 4))
                      : -1;
    if (t < 0) return Status::Corruption(path + ": not a table of this model");
    const RowStore& store = *model.table(t);
    EMBARK_ASSIGN_OR_RETURN(auto r, TableFileReader::Open(env, path, store.dim(), store.row_width()));
    RowBatch b;
    for (;;) {
      EMBARK_ASSIGN_OR_RETURN(bool more, r->Next(&b));
      if (!more) break;
      rows += b.size();
    }
    if (r->bytes() != e.bytes || Hex(r->checksum()) != e.xxh64)
      return Status::Corruption(path + ": checksum mismatch (file is corrupted)");
    d->tables_.push_back({t, path});
  }
  if (rows != d->info_.rows)
    return Status::Corruption(mpath + ": lists " + std::to_string(d->info_.rows) + " rows, its files hold " +
                              std::to_string(rows));
  d->info_.state.delta_seq = seq;
  d->info_.state.snapshot_id = d->info_.base;
  return d;
}

Status Delta::ApplyRows(const Model& model) const {
  RowBatch b;
  for (const TableFile& f : tables_) {
    RowStore* store = model.table(f.table);
    EMBARK_ASSIGN_OR_RETURN(auto r, TableFileReader::Open(env_, f.path, store->dim(), store->row_width()));
    for (;;) {
      EMBARK_ASSIGN_OR_RETURN(bool more, r->Next(&b));
      if (!more) break;
      EMBARK_RETURN_IF_ERROR(store->Put(b.keys.data(), b.size(), b.rows.data(), b.meta.data()));
    }
  }
  return Status::OK();
}

Status Delta::Apply(Model* model) const {
  EMBARK_RETURN_IF_ERROR(ApplyRows(*model));
  std::copy(dense_.begin(), dense_.end(), model->params().data());
  return Status::OK();
}

Status ApplyDeltas(const std::string& dir, LoadedCheckpoint* ck, Env* env) {
  ck->deltas_applied = 0;
  ck->delta_error = Status::OK();
  EMBARK_ASSIGN_OR_RETURN(std::vector<uint64_t> seqs, ListDeltas(dir, env));
  uint64_t next = ck->state.delta_seq + 1;
  for (uint64_t seq : seqs) {
    if (seq < next) continue;  // folded into the snapshot already
    if (seq > next) {
      ck->delta_error = Status::Corruption(DeltasDir(dir) + ": delta " + std::to_string(next) + " is missing; " +
                                           std::to_string(seq) + " and later cannot apply");
      break;
    }
    auto d = Delta::Open(dir, seq, *ck->model, env);
    if (!d.ok()) {
      ck->delta_error = d.status();
      break;
    }
    if ((*d)->info().base != ck->state.snapshot_id) {
      ck->delta_error = Status::Corruption(DeltaDir(dir, seq) + ": applies to snapshot '" + (*d)->info().base +
                                           "', the directory holds snapshot '" + ck->state.snapshot_id + "'");
      break;
    }
    EMBARK_RETURN_IF_ERROR((*d)->Apply(ck->model.get()));
    ck->opt = (*d)->dense_opt();
    // A delta's trainer.json holds the counters; the history stays the snapshot's.
    std::vector<std::string> history = std::move(ck->state.history);
    std::string reliability = std::move(ck->state.reliability);
    ck->state = (*d)->info().state;
    ck->state.history = std::move(history);
    ck->state.reliability = std::move(reliability);
    ck->delta_written_unix = (*d)->info().written_unix;
    ck->delta_newest_sample_unix = (*d)->info().newest_sample_unix;
    ++ck->deltas_applied;
    ++next;
  }
  return Status::OK();
}

}  // namespace embark
