#include "train/job.h"

#include <set>

#include "checkpoint/checkpoint.h"
#include "data/spec.h"
#include "dist/dense.h"
#include "util/fs.h"

namespace embark {

Result<TrainConfig> ResolveTrainConfig(const ConfigSources& src) {
  TrainConfig requested;
  std::set<std::string> explicitly_set;
  if (!src.config_file.empty()) EMBARK_RETURN_IF_ERROR(LoadConfigToml(src.config_file, &requested, &explicitly_set));
  for (const auto& [name, value] : src.values) {
    const ParamDef* p = FindParam(name);
    if (p == nullptr) return Status::InvalidArgument("unknown parameter '" + name + "'");
    Status s = p->set(&requested, value);
    if (!s.ok()) return Status::InvalidArgument(FlagName(name) + ": " + s.message());
    explicitly_set.insert(p->name);  // a former name counts as the parameter's current one
  }
  TrainConfig cfg = requested;
  if (!src.resume_dir.empty()) {
    // The checkpoint's config.toml is written by ConfigToToml: the same
    // reader as --config reads it back.
    const std::string path = src.resume_dir + "/config.toml";
    auto text = fs::ReadFile(path);
    if (!text.ok()) {
      return Status::NotFound("'" + src.resume_dir + "' is not a checkpoint (no config.toml): " +
                              text.status().message());
    }
    TrainConfig saved;
    EMBARK_RETURN_IF_ERROR(LoadConfigToml(path, &saved));
    EMBARK_ASSIGN_OR_RETURN(cfg, ResolveResumeConfig(saved, requested, explicitly_set));
  }
  EMBARK_RETURN_IF_ERROR(ValidateConfig(cfg));
  return cfg;
}

Result<TrainJob> MakeTrainJob(const TrainRequest& req) {
  if (req.train_files.empty()) return Status::InvalidArgument("no training files");
  TrainJob job;
  EMBARK_ASSIGN_OR_RETURN(job.cfg, ResolveTrainConfig(req.params));
  job.dist.staleness = job.cfg.staleness;
  EMBARK_ASSIGN_OR_RETURN(job.dist.compression, ParseWireCompression(job.cfg.dense_compression));
  job.train_files = req.train_files;
  job.valid_files = req.valid_files;
  job.out_dir = req.out_dir;
  job.resume_dir = req.params.resume_dir;
  job.progress = req.progress;
  if (job.resume_dir.empty()) {
    EMBARK_ASSIGN_OR_RETURN(
        job.spec, ResolveDataSpec(job.cfg.format, job.cfg.ffm_fields, req.schema_file, req.train_files.front()));
  }
  return job;
}

Result<Metrics> EvaluateCheckpoint(const EvalRequest& req) {
  EMBARK_ASSIGN_OR_RETURN(LoadedCheckpoint ck, LoadCheckpoint(req.model_dir));
  ck.model->FreezeForInference();
  ThreadPool pool(req.threads > 0 ? req.threads : DefaultThreads());
  return EvaluateFiles(*ck.model, req.files, &pool, req.max_bad_lines, 1);
}

}  // namespace embark
