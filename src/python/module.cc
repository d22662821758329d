// embark._embark, the CPython extension behind `import embark`: the public
// API of include/embark/ (and nothing under src/), with numpy arrays in and
// out. python/embark/__init__.py is the package users import; it checks
// dtypes and shapes, turns keyword arguments into parameters and JSON into
// dicts, and wraps these classes.
//
// Every call that trains, scores, reads or writes runs with the GIL
// released. Python callbacks run on the training thread with the GIL taken
// back; an exception they raise (and Ctrl-C, seen there) stops the run the
// way Trainer::Stop does, and is raised again once Fit has returned.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "embark/embark.h"

namespace py = pybind11;

namespace {

// A failed Status on its way to Python; the translator below raises the
// embark._errors class for its code with its message.
struct StatusError {
  embark::Status status;
};

void Check(const embark::Status& s) {
  if (!s.ok()) throw StatusError{s};
}

template <typename T>
T Take(embark::Result<T> r) {
  if (!r.ok()) throw StatusError{r.status()};
  return std::move(r).value();
}

const char* ErrorClass(embark::Status::Code code) {
  switch (code) {
    case embark::Status::Code::kInvalidArgument: return "InvalidArgument";
    case embark::Status::Code::kNotFound: return "NotFound";
    case embark::Status::Code::kIOError: return "IOFailure";
    case embark::Status::Code::kCorruption:
    case embark::Status::Code::kParseError: return "DataError";
    case embark::Status::Code::kOk: break;
  }
  return "Error";
}

// Runs fn() with the GIL released: every call into the engine (training,
// scoring, reading, writing) goes through here, so other Python threads run.
template <typename Fn>
auto WithoutGil(Fn&& fn) {
  py::gil_scoped_release nogil;
  return fn();
}

// A numpy array of exactly T (python/embark checks first; this is the
// guard for callers of the extension itself), C-contiguous, kept alive.
template <typename T>
const T* Data(py::handle obj, const char* name, int ndim, std::vector<py::array>* keep, py::ssize_t* shape0,
              py::ssize_t* shape1 = nullptr) {
  if (obj.is_none()) return nullptr;
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + ": expected a numpy array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": dtype " + py::str(a.dtype()).cast<std::string>() + ", expected " +
                         py::str(py::dtype::of<T>()).cast<std::string>());
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": " + std::to_string(a.ndim()) + " dimension(s), expected " +
                          std::to_string(ndim));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": not C-contiguous");
  *shape0 = a.shape(0);
  if (shape1) *shape1 = ndim > 1 ? a.shape(1) : 0;
  keep->push_back(a);
  return static_cast<const T*>(a.data());
}

// Samples in numpy arrays, read in place (embark/arrays.h).
class Arrays {
 public:
  Arrays(py::object labels, py::object dense, py::object ids, py::object indptr, py::object indices,
         py::object values, std::vector<std::string> dense_names, std::vector<std::string> id_names) {
    py::ssize_t n = -1, r = 0, c = 0;
    auto rows = [&](const char* name, py::ssize_t k) {
      if (n >= 0 && k != n)
        throw py::value_error(std::string(name) + ": " + std::to_string(k) + " rows, the other arrays have " +
                              std::to_string(n));
      n = k;
    };
    d_.labels = Data<float>(labels, "labels", 1, &keep_, &r);
    if (d_.labels) rows("labels", r);
    d_.dense = Data<float>(dense, "dense", 2, &keep_, &r, &c);
    if (d_.dense) {
      rows("dense", r);
      d_.dense_cols = static_cast<int>(c);
    }
    if (!ids.is_none()) {
      auto a = py::reinterpret_borrow<py::array>(ids);
      d_.ids_unsigned = py::isinstance<py::array>(ids) && a.dtype().is(py::dtype::of<uint64_t>());
      d_.ids = d_.ids_unsigned ? static_cast<const void*>(Data<uint64_t>(ids, "ids", 2, &keep_, &r, &c))
                               : static_cast<const void*>(Data<int64_t>(ids, "ids", 2, &keep_, &r, &c));
      rows("ids", r);
      d_.id_cols = static_cast<int>(c);
    }
    if (!indptr.is_none()) {
      d_.indptr = Data<int64_t>(indptr, "csr indptr", 1, &keep_, &r);
      if (r < 1) throw py::value_error("csr indptr: empty; it holds rows + 1 offsets");
      rows("csr", r - 1);
      py::ssize_t nnz = 0, nv = 0;
      auto a = py::reinterpret_borrow<py::array>(indices);
      d_.indices_unsigned = py::isinstance<py::array>(indices) && a.dtype().is(py::dtype::of<uint64_t>());
      d_.indices = d_.indices_unsigned
                       ? static_cast<const void*>(Data<uint64_t>(indices, "csr indices", 1, &keep_, &nnz))
                       : static_cast<const void*>(Data<int64_t>(indices, "csr indices", 1, &keep_, &nnz));
      d_.values = Data<float>(values, "csr values", 1, &keep_, &nv);
      if (d_.values && nv != nnz)
        throw py::value_error("csr: " + std::to_string(nv) + " values for " + std::to_string(nnz) + " indices");
      d_.nnz = static_cast<size_t>(nnz);
    }
    if (n < 0) throw py::value_error("no arrays: give labels, dense, ids or csr");
    d_.rows = static_cast<size_t>(n);
    d_.dense_names = std::move(dense_names);
    d_.id_names = std::move(id_names);
  }
  const embark::ArrayData& data() const { return d_; }
  size_t rows() const { return d_.rows; }

 private:
  std::vector<py::array> keep_;
  embark::ArrayData d_;
};

// A batch ready for Trainer.step (from arrays or files, encoded with the
// model's data spec).
struct PyBatch {
  embark::Batch batch;
};

// Batches of files with a model's data spec, one at a time.
class PyReader {
 public:
  explicit PyReader(std::unique_ptr<embark::BatchReader> r) : r_(std::move(r)) {}
  std::optional<PyBatch> Next() {
    PyBatch b;
    if (!Take(WithoutGil([&] { return r_->Next(&b.batch); }))) return std::nullopt;
    return b;
  }

 private:
  std::unique_ptr<embark::BatchReader> r_;
};

py::dict MetricsDict(const embark::Metrics& m) {
  py::dict d;
  d["count"] = m.count;
  d["auc"] = m.auc;
  d["logloss"] = m.logloss;
  d["ne"] = m.ne;
  d["ctr"] = m.ctr;
  d["mean_pred"] = m.mean_pred;
  d["calibration"] = m.calibration;
  return d;
}

py::dict InfoDict(const embark::CheckpointInfo& i) {
  py::dict d;
  d["dir"] = i.dir;
  d["model"] = i.model;
  d["data_format"] = i.data_format;
  d["num_fields"] = i.num_fields;
  d["num_dense"] = i.num_dense;
  d["outputs"] = i.outputs;
  d["epochs_done"] = i.epochs_done;
  d["step"] = i.step;
  d["samples"] = i.samples;
  d["epoch_samples"] = i.epoch_samples;
  d["dense_params"] = i.dense_params;
  py::list tables;
  for (const auto& t : i.tables) {
    py::dict td;
    td["name"] = t.name;
    td["dim"] = t.dim;
    td["rows"] = t.rows;
    td["memory_bytes"] = t.memory_bytes;
    td["precision"] = t.precision;
    tables.append(td);
  }
  d["tables"] = tables;
  return d;
}

py::dict ReportDict(const embark::TrainReport& r) {
  py::dict d;
  d["samples"] = r.samples;
  d["steps"] = r.steps;
  d["epochs_done"] = r.epochs_done;
  d["train_seconds"] = r.train_seconds;
  d["samples_per_sec"] = r.samples_per_sec;
  d["final_loss"] = r.final_loss;
  d["train_calibration"] = r.train_calibration;
  d["valid"] = r.has_valid ? py::object(MetricsDict(r.valid)) : py::none();
  d["calibrated"] = r.calibrated;
  d["best_auc"] = r.best_auc;
  d["stopped_early"] = r.stopped_early;
  d["stopped"] = r.stopped;
  d["bad_lines"] = r.bad_lines;
  d["peak_rss_bytes"] = r.peak_rss_bytes;
  d["embedding_rows"] = r.embedding_rows;
  d["threads"] = r.threads;
  return d;
}

// Scores `n` rows of `a` into a new float32 array, `chunk` rows at a time.
template <typename Encode, typename Predict>
py::array_t<float> PredictRows(const Arrays& a, Encode&& encode, Predict&& predict) {
  py::array_t<float> out(static_cast<py::ssize_t>(a.rows()));
  float* p = out.mutable_data();
  py::gil_scoped_release nogil;
  embark::Batch b;
  constexpr size_t kChunk = 4096;
  for (size_t i = 0; i < a.rows(); i += kChunk) {
    const size_t end = std::min(a.rows(), i + kChunk);
    Check(encode(a.data(), i, end, &b));
    Check(predict(b, p + i));
  }
  return out;
}

py::array_t<float> ToNumpy(const std::vector<float>& v) {
  py::array_t<float> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

struct TrainerArgs {
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::string> train_files, valid_files;
  std::shared_ptr<Arrays> train_arrays, valid_arrays;
  std::string schema, out, resume, config;
  bool progress = false;
};

class PyTrainer {
 public:
  explicit PyTrainer(const TrainerArgs& args) : train_arrays_(args.train_arrays), valid_arrays_(args.valid_arrays) {
    embark::TrainOptions o;
    for (const auto& [name, value] : args.params) Check(o.Set(name, value));
    o.train_files = args.train_files;
    o.valid_files = args.valid_files;
    if (train_arrays_) o.train_arrays = train_arrays_->data();
    if (valid_arrays_) o.valid_arrays = valid_arrays_->data();
    o.schema_file = args.schema;
    o.out_dir = args.out;
    o.resume_from = args.resume;
    o.config_file = args.config;
    o.progress = args.progress;
    o.on_step = [this] { OnStep(); };
    o.on_history = [this](const std::string& record) { return OnHistory(record); };
    py::gil_scoped_release nogil;
    trainer_ = Take(embark::Trainer::Open(o));
  }

  py::dict Fit(py::object callback) {
    callback_ = std::move(callback);
    pending_.reset();
    last_check_ = std::chrono::steady_clock::now();
    embark::Result<embark::TrainReport> r = WithoutGil([&] { return trainer_->Fit(); });
    callback_ = py::none();
    if (pending_) {
      // Ctrl-C or the callback's exception: the run stopped cleanly (its
      // checkpoint is written); the exception goes on to the caller.
      py::error_already_set e = std::move(*pending_);
      pending_.reset();
      throw e;
    }
    return ReportDict(Take(std::move(r)));
  }

  void Stop() { trainer_->Stop(); }

  py::dict Step(const PyBatch& b) {
    embark::StepResult s = Take(WithoutGil([&] { return trainer_->Step(b.batch); }));
    py::dict d;
    d["samples"] = s.samples;
    d["loss"] = s.samples ? s.loss / static_cast<double>(s.samples) : 0.0;
    d["step"] = s.step;
    return d;
  }

  PyBatch Encode(const Arrays& a, size_t begin, size_t end) const {
    PyBatch b;
    py::gil_scoped_release nogil;
    Check(trainer_->Encode(a.data(), begin, end, &b.batch));
    return b;
  }

  PyReader Read(const std::vector<std::string>& files, int batch_size, int64_t max_bad_lines) const {
    embark::ReadSettings s;
    s.batch_size = batch_size;
    s.max_bad_lines = max_bad_lines;
    py::gil_scoped_release nogil;
    return PyReader(Take(trainer_->Read(files, s)));
  }

  py::array_t<float> PredictArrays(const Arrays& a) {
    return PredictRows(
        a, [&](const embark::ArrayData& d, size_t b, size_t e, embark::Batch* out) { return trainer_->Encode(d, b, e, out); },
        [&](const embark::Batch& b, float* p) { return trainer_->Predict(b, p); });
  }

  py::array_t<float> PredictFiles(const std::vector<std::string>& files) {
    std::vector<float> probs;
    {
      py::gil_scoped_release nogil;
      auto reader = Take(trainer_->Read(files, {}));
      embark::Batch b;
      while (Take(reader->Next(&b))) {
        const size_t at = probs.size();
        probs.resize(at + b.size());
        Check(trainer_->Predict(b, probs.data() + at));
      }
    }
    return ToNumpy(probs);
  }

  py::dict EvaluateArrays(const Arrays& a) {
    return MetricsDict(Take(WithoutGil([&] { return trainer_->Evaluate(a.data()); })));
  }

  py::dict EvaluateFiles(const std::vector<std::string>& files) {
    return MetricsDict(Take(WithoutGil([&] { return trainer_->Evaluate(files); })));
  }

  void Save(const std::string& dir) {
    py::gil_scoped_release nogil;
    Check(trainer_->Save(dir));
  }

  py::dict Info() const { return InfoDict(trainer_->info()); }
  std::string History() const { return trainer_->History(); }

 private:
  // On Fit's thread, GIL released, after every step: at most ten times a
  // second, take the GIL and let Python run its signal handlers (Ctrl-C).
  void OnStep() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_check_ < std::chrono::milliseconds(100)) return;
    last_check_ = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      pending_.emplace();
      trainer_->Stop();
    }
  }

  bool OnHistory(const std::string& record) {
    py::gil_scoped_acquire gil;
    if (callback_.is_none() || pending_) return !pending_;
    try {
      py::object r = callback_(record);
      return r.is_none() || py::bool_(r);
    } catch (py::error_already_set& e) {
      pending_.emplace(std::move(e));
      return false;
    }
  }

  std::shared_ptr<Arrays> train_arrays_, valid_arrays_;  // read by Fit: kept as long as the trainer
  std::unique_ptr<embark::Trainer> trainer_;
  py::object callback_ = py::none();
  std::optional<py::error_already_set> pending_;
  std::chrono::steady_clock::time_point last_check_;
};

class PyModel {
 public:
  PyModel(const std::string& dir, int threads) {
    embark::PredictorOptions o;
    o.threads = threads;
    py::gil_scoped_release nogil;
    p_ = Take(embark::Predictor::Open(dir, o));
  }

  py::array_t<float> PredictArrays(const Arrays& a) {
    return PredictRows(
        a, [&](const embark::ArrayData& d, size_t b, size_t e, embark::Batch* out) { return p_->Encode(d, b, e, out); },
        [&](const embark::Batch& b, float* p) { return p_->Predict(b, p); });
  }

  py::array_t<float> PredictFiles(const std::vector<std::string>& files, int64_t max_bad_lines) {
    std::vector<float> probs;
    {
      py::gil_scoped_release nogil;
      Take(p_->PredictFiles(files, max_bad_lines,
                            [&](const float* p, const float*, size_t n) { probs.insert(probs.end(), p, p + n); }));
    }
    return ToNumpy(probs);
  }

  py::dict EvaluateArrays(const Arrays& a) {
    return MetricsDict(Take(WithoutGil([&] { return p_->Evaluate(a.data()); })));
  }

  py::dict EvaluateFiles(const std::vector<std::string>& files, int64_t max_bad_lines) {
    return MetricsDict(Take(WithoutGil([&] { return p_->Evaluate(files, max_bad_lines); })));
  }

  py::dict Info() const { return InfoDict(p_->info()); }
  std::string History() const { return p_->History(); }

 private:
  std::unique_ptr<embark::Predictor> p_;
};

}  // namespace

PYBIND11_MODULE(_embark, m) {
  m.doc() = "embark's native core; import the embark package instead (docs/python.md)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object cls = py::module_::import("embark._errors").attr(ErrorClass(e.status.code()));
      PyErr_SetString(cls.ptr(), e.status.message().c_str());
    }
  });

  m.def("version", [] { return std::string(embark::Version()); });
  m.def("params", [] {
    py::list out;
    for (const embark::ParamInfo& p : embark::ListParams()) {
      py::dict d;
      d["name"] = p.name;
      d["flag"] = p.flag;
      d["type"] = p.type;
      d["group"] = p.group;
      d["default"] = p.default_value;
      d["help"] = p.help;
      d["fixed_on_resume"] = p.fixed_on_resume;
      d["former_names"] = p.former_names;
      out.append(d);
    }
    return out;
  });

  py::class_<Arrays, std::shared_ptr<Arrays>>(m, "Arrays")
      .def(py::init<py::object, py::object, py::object, py::object, py::object, py::object, std::vector<std::string>,
                    std::vector<std::string>>(),
           py::arg("labels"), py::arg("dense"), py::arg("ids"), py::arg("indptr"), py::arg("indices"),
           py::arg("values"), py::arg("dense_names"), py::arg("id_names"))
      .def("__len__", &Arrays::rows);

  py::class_<PyBatch>(m, "Batch").def("__len__", [](const PyBatch& b) { return b.batch.size(); });
  py::class_<PyReader>(m, "Reader").def("next", &PyReader::Next);

  py::class_<TrainerArgs>(m, "TrainerArgs")
      .def(py::init<>())
      .def_readwrite("params", &TrainerArgs::params)
      .def_readwrite("train_files", &TrainerArgs::train_files)
      .def_readwrite("valid_files", &TrainerArgs::valid_files)
      .def_readwrite("train_arrays", &TrainerArgs::train_arrays)
      .def_readwrite("valid_arrays", &TrainerArgs::valid_arrays)
      .def_readwrite("schema", &TrainerArgs::schema)
      .def_readwrite("out", &TrainerArgs::out)
      .def_readwrite("resume", &TrainerArgs::resume)
      .def_readwrite("config", &TrainerArgs::config)
      .def_readwrite("progress", &TrainerArgs::progress);

  py::class_<PyTrainer>(m, "Trainer")
      .def(py::init<const TrainerArgs&>())
      .def("fit", &PyTrainer::Fit, py::arg("callback"))
      .def("stop", &PyTrainer::Stop)
      .def("step", &PyTrainer::Step)
      .def("encode", &PyTrainer::Encode)
      .def("read", &PyTrainer::Read)
      .def("predict_arrays", &PyTrainer::PredictArrays)
      .def("predict_files", &PyTrainer::PredictFiles)
      .def("evaluate_arrays", &PyTrainer::EvaluateArrays)
      .def("evaluate_files", &PyTrainer::EvaluateFiles)
      .def("save", &PyTrainer::Save)
      .def("info", &PyTrainer::Info)
      .def("history", &PyTrainer::History);

  py::class_<PyModel>(m, "Model")
      .def(py::init<const std::string&, int>())
      .def("predict_arrays", &PyModel::PredictArrays)
      .def("predict_files", &PyModel::PredictFiles)
      .def("evaluate_arrays", &PyModel::EvaluateArrays)
      .def("evaluate_files", &PyModel::EvaluateFiles)
      .def("info", &PyModel::Info)
      .def("history", &PyModel::History);
}
