// embark::Trainer: options resolved by train/job, the distributed job
// joined when launched under mpirun/srun, and a TrainerImpl doing the work.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "api/internal.h"
#include "dist/comm.h"
#include "embark/trainer.h"
#include "train/job.h"
#include "train/online.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/log.h"

namespace embark {

struct Trainer::Rep {
  TrainJob job;
  std::string stream;
  std::function<void(const std::string&)> on_stream_report;
  std::atomic<bool> stop{false};
  std::unique_ptr<Communicator> comm;
  Logger log;
  std::unique_ptr<TrainerImpl> impl;
};

Trainer::Trainer(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
Trainer::~Trainer() = default;

Result<std::unique_ptr<Trainer>> Trainer::Open(const TrainOptions& options) {
  TrainRequest req;
  req.params.resume_dir = options.resume_from;
  if (!options.stream.empty()) {
    if (!options.train_files.empty())
      return Status::InvalidArgument("--stream reads one source (--data): give it once, and no other training files");
    if (options.out_dir.empty()) return Status::InvalidArgument("--stream needs --out: deltas and snapshots go there");
    if (!options.valid_files.empty())
      return Status::InvalidArgument(
          "--stream validates progressively (each batch is scored before it is trained on): --valid is for batch "
          "training");
    // A stream restarted into its own output directory picks up where it stopped.
    if (req.params.resume_dir.empty() && Env::Posix()->FileExists(options.out_dir + "/MANIFEST.json"))
      req.params.resume_dir = options.out_dir;
  }
  if (options.train_arrays) {
    if (!options.stream.empty()) return Status::InvalidArgument("--stream reads its source, not arrays");
    if (!options.train_files.empty())
      return Status::InvalidArgument("training data: give files or arrays, not both");
    req.arrays = &*options.train_arrays;
  }
  if (options.valid_arrays && !options.valid_files.empty())
    return Status::InvalidArgument("validation data: give files or arrays, not both");
  req.params.config_file = options.config_file;
  req.params.values = options.values();
  req.train_files = options.train_files;
  req.valid_files = options.valid_files;
  req.out_dir = options.out_dir;
  req.schema_file = options.schema_file;
  req.progress = options.progress;
  req.allow_no_train_files = true;
  auto rep = std::make_unique<Rep>();
  req.stream = !options.stream.empty();
  EMBARK_ASSIGN_OR_RETURN(rep->job, MakeTrainJob(req));
  rep->stream = options.stream;
  rep->on_stream_report = options.on_stream_report;
  if (!req.out_dir.empty()) {
    // Before any training: the checkpoint's swap would delete what is there.
    Status s = fs::CheckReplaceable(req.out_dir);
    if (!s.ok()) return Status::InvalidArgument("--out: " + s.message());
  }
  if (LaunchedUnderMpi()) {
    EMBARK_ASSIGN_OR_RETURN(rep->comm, NewMpiCommunicator(rep->job.cfg.comm_timeout));
  }
  const bool lead = !rep->comm || rep->comm->rank() == 0;
  rep->log.set_level(options.log_info && lead ? LogLevel::kInfo : LogLevel::kWarn);
  rep->job.comm = rep->comm.get();
  rep->job.progress = rep->job.progress && lead;
  auto impl = OpenTrainer(rep->job, rep->log);
  if (!impl.ok() && rep->comm && rep->comm->size() > 1) {
    // The other ranks would wait for this one in their first collective.
    std::fprintf(stderr, "embark: rank %d: %s\n", rep->comm->rank(), impl.status().message().c_str());
    std::fflush(stderr);
    rep->comm->Abort(1);
  }
  EMBARK_ASSIGN_OR_RETURN(rep->impl, std::move(impl));
  if ((options.train_arrays || options.valid_arrays) && rep->comm && rep->comm->size() > 1)
    return Status::InvalidArgument("arrays train on one process; a distributed job reads files");
  // The arrays meet the model's data spec (a resumed model's is its checkpoint's).
  const DataSpec& spec = rep->impl->model().spec();
  auto encoder = [&spec](const std::optional<ArrayData>& arrays, const char* what,
                         std::shared_ptr<const ArrayEncoder>* out) -> Status {
    if (!arrays) return Status::OK();
    auto enc = ArrayEncoder::Make(spec, *arrays, true);
    if (!enc.ok()) return Status::InvalidArgument(std::string(what) + " arrays: " + enc.status().message());
    *out = std::move(enc).value();
    return Status::OK();
  };
  EMBARK_RETURN_IF_ERROR(encoder(options.train_arrays, "training", &rep->job.train_arrays));
  EMBARK_RETURN_IF_ERROR(encoder(options.valid_arrays, "validation", &rep->job.valid_arrays));
  rep->job.stop = &rep->stop;
  rep->job.on_step = options.on_step;
  rep->job.on_history = options.on_history;
  return std::unique_ptr<Trainer>(new Trainer(std::move(rep)));
}

Result<TrainReport> Trainer::Fit() {
  if (!rep_->stream.empty()) {
    StreamJob sj;
    sj.source = rep_->stream;
    sj.stop = &rep_->stop;
    sj.on_report = rep_->on_stream_report;
    return FitStream(rep_->impl.get(), rep_->job, sj, rep_->log);
  }
  if (rep_->job.train_files.empty() && !rep_->job.train_arrays)
    return Status::InvalidArgument("Fit: no training data (files or arrays)");
  if (rep_->job.out_dir.empty()) return Status::InvalidArgument("Fit: no output directory (out_dir)");
  auto report = embark::Fit(rep_->impl.get(), rep_->job, rep_->log);
  // A Stop applies to one Fit: the next one trains.
  rep_->stop.store(false, std::memory_order_relaxed);
  return report;
}

void Trainer::Stop() { rep_->stop.store(true, std::memory_order_relaxed); }

Result<std::unique_ptr<BatchReader>> Trainer::Read(const std::vector<std::string>& files,
                                                   const ReadSettings& settings) const {
  return api::NewReader(files, rep_->impl->model().spec(), settings);
}

Result<StepResult> Trainer::Step(const Batch& batch) {
  if (rep_->comm && rep_->comm->size() > 1)
    return Status::InvalidArgument("Step: a distributed trainer trains with Fit (its ranks exchange rows per step)");
  EMBARK_RETURN_IF_ERROR(api::CheckBatch(batch, rep_->impl->model().spec(), true));
  EMBARK_ASSIGN_OR_RETURN(StepStats st, rep_->impl->Step(batch));
  StepResult r;
  r.samples = st.samples;
  r.loss = st.sums.loss;
  r.sum_predictions = st.sums.pred;
  r.sum_labels = st.sums.labels;
  r.step = rep_->impl->state().step;
  return r;
}

Result<Metrics> Trainer::Evaluate(const std::vector<std::string>& files) { return rep_->impl->Evaluate(files); }

Result<Metrics> Trainer::Evaluate(const ArrayData& data) {
  EvalData d;
  EMBARK_ASSIGN_OR_RETURN(d.arrays, ArrayEncoder::Make(rep_->impl->model().spec(), data, true));
  return rep_->impl->Evaluate(d);
}

Status Trainer::Encode(const ArrayData& data, size_t begin, size_t end, Batch* batch) const {
  return api::EncodeArrays(rep_->impl->model().spec(), data, begin, end, batch);
}

std::string Trainer::History() const {
  return HistoryJson(rep_->impl->state(), rep_->impl->model().config().model);
}

Status Trainer::Predict(const Batch& batch, float* out) {
  EMBARK_RETURN_IF_ERROR(api::CheckBatch(batch, rep_->impl->model().spec(), false));
  return rep_->impl->Predict(batch, out);
}

Status Trainer::Save(const std::string& dir) { return rep_->impl->Save(dir, rep_->impl->state().best_auc); }

CheckpointInfo Trainer::info() const {
  return api::Describe(rep_->impl->model(), rep_->impl->state(), rep_->job.out_dir);
}

int Trainer::rank() const { return rep_->comm ? rep_->comm->rank() : 0; }
int Trainer::ranks() const { return rep_->comm ? rep_->comm->size() : 1; }

void Trainer::AbortJob(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (rep_->comm) rep_->comm->Abort(code);
  std::exit(code);
}

}  // namespace embark
