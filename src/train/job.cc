#include "train/job.h"

#include <map>
#include <set>

#include "checkpoint/checkpoint.h"
#include "data/arrays.h"
#include "data/spec.h"
#include "dist/dense.h"
#include "util/fs.h"

namespace embark {

Result<TrainConfig> ResolveTrainConfig(const ConfigSources& src) {
  TrainConfig requested;
  std::set<std::string> explicitly_set;
  if (!src.config_file.empty()) EMBARK_RETURN_IF_ERROR(LoadConfigToml(src.config_file, &requested, &explicitly_set));
  std::map<std::string, std::string> given_as;  // parameter -> the name it was given under
  for (const auto& [name, value] : src.values) {
    const ParamDef* p = FindParam(name);
    if (p == nullptr) return Status::InvalidArgument("unknown parameter '" + name + "'");
    // The same name again replaces the value; a former name and the new one
    // both given is ambiguous.
    auto [it, first] = given_as.emplace(p->name, name);
    if (!first && it->second != name) {
      const std::string& former = name == p->name ? it->second : name;
      return Status::InvalidArgument(FlagName(former) + " sets '" + p->name + "' again (" + FlagName(former) +
                                     " is the former name of " + FlagName(p->name) + ", also given): keep " +
                                     FlagName(p->name));
    }
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
    if (saved.row_precision == "int8")
      return Status::InvalidArgument("--resume: '" + src.resume_dir +
                                     "' is an int8 serving copy (embark export): its rows are rounded to int8 and it "
                                     "holds no optimizer state, so training cannot resume from it; resume from the "
                                     "checkpoint it was exported from");
    EMBARK_ASSIGN_OR_RETURN(cfg, ResolveResumeConfig(saved, requested, explicitly_set));
  }
  EMBARK_RETURN_IF_ERROR(ValidateConfig(cfg));
  return cfg;
}

namespace {
Status CheckResumeSchema(const std::string& schema_file, const std::string& resume_dir) {
  const std::string spec_path = resume_dir + "/data_spec.json";
  EMBARK_ASSIGN_OR_RETURN(std::string text, fs::ReadFile(spec_path));
  auto saved = DataSpec::FromJson(text);
  if (!saved.ok()) return Status::Corruption(spec_path + ": " + saved.status().message());
  const std::string what = "--schema '" + schema_file + "': cannot change the data spec when resuming: ";
  if (saved->format != Format::kCsv)
    return Status::InvalidArgument(what + "the checkpoint reads " + FormatName(saved->format) +
                                   ", not CSV with a schema; drop --schema");
  EMBARK_ASSIGN_OR_RETURN(CsvSchema schema, LoadCsvSchema(schema_file));
  DataSpec given = DataSpec::Csv(schema);
  given.key_hash = saved->key_hash;  // not the schema's to say
  if (given.ToJson() != saved->ToJson())
    return Status::InvalidArgument(what + "it differs from the checkpoint's (" + spec_path +
                                   "); drop --schema, or give the one the checkpoint was trained with");
  return Status::OK();
}
}  // namespace

Result<TrainJob> MakeTrainJob(const TrainRequest& req) {
  TrainJob job;
  EMBARK_ASSIGN_OR_RETURN(job.cfg, ResolveTrainConfig(req.params));
  const bool array_spec =
      req.train_files.empty() && req.arrays && req.params.resume_dir.empty() && job.cfg.format == "auto" &&
      req.schema_file.empty();
  if (req.train_files.empty() && !req.arrays) {
    if (!req.allow_no_train_files) return Status::InvalidArgument("no training files");
    if (req.params.resume_dir.empty() && job.cfg.format == "auto" && req.schema_file.empty())
      return Status::InvalidArgument(
          req.stream ? "--stream: give the data format (--format criteo, libsvm, libffm with --ffm-fields, or csv "
                       "with --schema): there is no file to guess it from"
                     : "no training files: give some, or the data format (format = criteo, libsvm, libffm with "
                       "ffm_fields, or csv with a schema)");
  }
  job.dist.staleness = job.cfg.staleness;
  EMBARK_ASSIGN_OR_RETURN(job.dist.compression, ParseWireCompression(job.cfg.dense_compression));
  // A pipe can be read once: one epoch of it, and never as validation
  // data (read at every evaluation).
  EMBARK_RETURN_IF_ERROR(CheckReadOnce(req.train_files, "--data"));
  for (const std::string& f : req.train_files)
    if (!IsReReadable(f) && job.cfg.epochs > 1)
      return Status::InvalidArgument("--data '" + f + "' is a pipe or device, which can be read once: --epochs must be "
                                     "1 (it is " + std::to_string(job.cfg.epochs) + ")");
  for (const std::string& f : req.valid_files)
    if (!IsReReadable(f))
      return Status::InvalidArgument("--valid '" + f + "' is a pipe or device; validation reads its files at every "
                                     "evaluation: give a file");
  job.train_files = req.train_files;
  job.valid_files = req.valid_files;
  job.out_dir = req.out_dir;
  job.resume_dir = req.params.resume_dir;
  job.progress = req.progress;
  if (array_spec) {
    EMBARK_ASSIGN_OR_RETURN(job.spec, ArraySpec(*req.arrays));
  } else if (job.resume_dir.empty()) {
    EMBARK_ASSIGN_OR_RETURN(
        job.spec, ResolveDataSpec(job.cfg.format, job.cfg.ffm_fields, req.schema_file,
                                  req.train_files.empty() ? std::string() : req.train_files.front()));
  } else if (!req.schema_file.empty()) {
    // The checkpoint fixes the data spec: a schema given again must be the
    // one it was trained with, never silently ignored.
    EMBARK_RETURN_IF_ERROR(CheckResumeSchema(req.schema_file, job.resume_dir));
  }
  return job;
}

}  // namespace embark
