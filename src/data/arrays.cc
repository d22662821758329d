#include "data/arrays.h"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <set>

namespace embark {

namespace {

std::string Num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

// The number a file holding `x` reads as: the parsers read a numeric field
// as a double, and a float32 is written as its shortest text ("0.1" for
// 0.1f: numpy, pandas, std::to_chars), which is not (double)0.1f. Integers
// below 2^24 are exact either way.
double AsWritten(float x) {
  if (!std::isfinite(x) || (std::fabs(x) < 16777216.0f && x == std::trunc(x))) return x;
  char buf[32];
  const char* end = std::to_chars(buf, buf + sizeof buf, x).ptr;
  double d = x;
  std::from_chars(buf, end, d);
  return d;
}

std::string Names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 6; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 6) out += ", ... " + names.back();
  return out;
}

// "N numeric field(s) (a, b, c)"
std::string Count(const std::vector<std::string>& names, const char* what) {
  return std::to_string(names.size()) + " " + what + (names.empty() ? "" : " (" + Names(names) + ")");
}

class ArraySource : public SampleSource {
 public:
  ArraySource(std::shared_ptr<const ArrayEncoder> enc, const DataSpec& spec, size_t block_rows)
      : enc_(std::move(enc)), dense_(spec.num_dense), fields_(spec.num_fields), block_(std::max<size_t>(1, block_rows)) {}
  Result<bool> Next(Batch* block) override {
    if (pos_ >= enc_->rows()) return false;
    const size_t end = std::min(enc_->rows(), pos_ + block_);
    block->Reset(dense_, fields_);
    EMBARK_RETURN_IF_ERROR(enc_->Append(pos_, end, block));
    pos_ = end;
    return true;
  }
  // Progress counts rows.
  uint64_t bytes_read() const override { return pos_; }
  uint64_t bytes_total() const override { return enc_->rows(); }

 private:
  std::shared_ptr<const ArrayEncoder> enc_;
  int dense_, fields_;
  size_t block_;
  size_t pos_ = 0;
};

}  // namespace

ArrayEncoder::ArrayEncoder(const DataSpec& spec, const ArrayData& a, bool labels)
    : spec_(spec), enc_(spec), a_(a), labels_(labels) {}

Result<std::shared_ptr<const ArrayEncoder>> ArrayEncoder::Make(const DataSpec& spec, const ArrayData& a, bool labels) {
  std::shared_ptr<ArrayEncoder> e(new ArrayEncoder(spec, a, labels));
  std::vector<std::string> dense, ids, csr;
  for (const InputField& f : e->enc_.inputs()) {
    if (f.kind == InputField::kNumber) {
      e->inputs_.push_back({Input::kDense, static_cast<int>(dense.size())});
      dense.push_back(f.name);
    } else if (f.kind == InputField::kToken || spec.format == Format::kLibffm) {
      e->inputs_.push_back({Input::kId, static_cast<int>(ids.size())});
      ids.push_back(f.name);
    } else {
      e->inputs_.push_back({Input::kCsr, 0});
      csr.push_back(f.name);
    }
  }
  const std::string fmt = std::string(" (the model reads ") + FormatName(spec.format) + " data)";
  if (labels && a.labels == nullptr && a.rows > 0)
    return Status::InvalidArgument("labels: training and evaluation need a 0/1 label for every row");
  if (a.dense_cols < 0 || a.id_cols < 0) return Status::InvalidArgument("arrays: a negative column count");
  if (static_cast<size_t>(a.dense_cols) != dense.size() || (a.rows > 0 && !dense.empty() && a.dense == nullptr))
    return Status::InvalidArgument("dense: the model reads " + Count(dense, "numeric column(s)") + "; the array has " +
                                   std::to_string(a.dense == nullptr ? 0 : a.dense_cols) + fmt);
  if (static_cast<size_t>(a.id_cols) != ids.size() || (a.rows > 0 && !ids.empty() && a.ids == nullptr))
    return Status::InvalidArgument("ids: the model reads " + Count(ids, "categorical id column(s)") +
                                   "; the array has " + std::to_string(a.ids == nullptr ? 0 : a.id_cols) + fmt);
  if (csr.size() > 1)
    return Status::InvalidArgument("csr: the model reads " + Count(csr, "multi-valued fields") +
                                   "; arrays can fill one (as a CSR matrix): give files instead");
  if (csr.size() == 1 && !a.has_csr() && a.rows > 0)
    return Status::InvalidArgument("csr: the model reads the multi-valued field " + csr[0] +
                                   ": give it as a CSR matrix (indptr, indices, values)" + fmt);
  if (csr.empty() && a.has_csr())
    return Status::InvalidArgument("csr: the model has no multi-valued field to read a CSR matrix into" + fmt);
  if (a.has_csr() && a.nnz > 0 && a.indices == nullptr)
    return Status::InvalidArgument("csr: " + std::to_string(a.nnz) + " entries but no indices");
  return std::shared_ptr<const ArrayEncoder>(std::move(e));
}

std::string ArrayEncoder::Text(size_t row, const Input& in, const InputField& field, std::string* buf) const {
  buf->clear();
  char num[64];
  auto id_text = [&](const void* base, bool is_unsigned, size_t i, bool hex) -> std::string {
    if (is_unsigned) {
      const uint64_t v = static_cast<const uint64_t*>(base)[i];
      std::snprintf(num, sizeof num, hex ? "%08" PRIx64 : "%" PRIu64, v);
    } else {
      const int64_t v = static_cast<const int64_t*>(base)[i];
      if (hex && v < 0) return "id " + std::to_string(v) + " is negative; Criteo ids are hexadecimal";
      std::snprintf(num, sizeof num, hex ? "%08" PRIx64 : "%" PRId64, hex ? static_cast<uint64_t>(v) : v);
    }
    return {};
  };
  if (in.from == Input::kId) {
    const size_t i = row * static_cast<size_t>(a_.id_cols) + static_cast<size_t>(in.col);
    const bool criteo = spec_.format == Format::kCriteo;
    if (auto e = id_text(a_.ids, a_.ids_unsigned, i, criteo); !e.empty()) return e;
    buf->append(num);
    if (spec_.format == Format::kLibffm) buf->append(":1");
    return {};
  }
  const int64_t b = a_.indptr[row], e = a_.indptr[row + 1];
  if (b < 0 || e < b || static_cast<uint64_t>(e) > a_.nnz)
    return "csr: indptr[" + std::to_string(row) + "] = " + std::to_string(b) + " and indptr[" +
           std::to_string(row + 1) + "] = " + std::to_string(e) + " are not a range of the " +
           std::to_string(a_.nnz) + " entries";
  // libsvm's features are index:value; a CSV multi-valued column (whatever
  // its separator, a space included) holds plain ids.
  const bool svm = spec_.format == Format::kLibsvm;
  for (int64_t j = b; j < e; ++j) {
    const float w = a_.values ? a_.values[j] : 1.0f;
    if (!std::isfinite(w)) return "entry " + std::to_string(j) + ": weight is not finite";
    if (!svm && w != 1.0f)
      return "entry " + std::to_string(j) + ": weight " + Num(w) +
             "; a CSV multi-valued column holds ids without weights (give values of 1, or none)";
    if (auto err = id_text(a_.indices, a_.indices_unsigned, static_cast<size_t>(j), false); !err.empty()) return err;
    if (!buf->empty()) buf->push_back(field.sep);
    buf->append(num);
    if (svm) {
      // Nine significant digits read back as the same float.
      std::snprintf(num, sizeof num, ":%.9g", static_cast<double>(w));
      buf->append(num);
    }
  }
  return {};
}

Status ArrayEncoder::Append(size_t begin, size_t end, Batch* out) const {
  if (end > a_.rows || begin > end)
    return Status::InvalidArgument("arrays: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                                   ") of " + std::to_string(a_.rows));
  const std::vector<InputField>& fields = enc_.inputs();
  std::vector<RawValue> raw(fields.size());
  std::vector<std::string> bufs(fields.size());
  for (size_t r = begin; r < end; ++r) {
    float label = 0;
    if (labels_) {
      label = a_.labels[r];
      if (label != 0.0f && label != 1.0f)
        return Status::InvalidArgument("row " + std::to_string(r) + ": label " + Num(label) +
                                       " is not 0 or 1");
    }
    for (size_t i = 0; i < fields.size(); ++i) {
      const Input& in = inputs_[i];
      if (in.from == Input::kDense) {
        const float x = a_.dense[r * static_cast<size_t>(a_.dense_cols) + static_cast<size_t>(in.col)];
        raw[i] = std::isnan(x) ? RawValue{} : RawValue{RawValue::kNumber, AsWritten(x), {}};
        continue;
      }
      if (auto e = Text(r, in, fields[i], &bufs[i]); !e.empty())
        return Status::InvalidArgument("row " + std::to_string(r) + ": field " + fields[i].name + ": " + e);
      raw[i] = RawValue{RawValue::kString, 0, bufs[i]};
    }
    if (auto e = enc_.Append(raw.data(), out); !e.empty())
      return Status::InvalidArgument("row " + std::to_string(r) + ": " + e);
    out->labels.back() = label;
  }
  return Status::OK();
}

Result<DataSpec> ArraySpec(const ArrayData& a) {
  if (a.has_csr()) {
    if (a.dense_cols > 0 || a.id_cols > 0)
      return Status::InvalidArgument(
          "csr: a CSR matrix of weighted ids is libsvm's data, which has no other columns; give it alone, or give "
          "a format or schema whose spec reads all the arrays");
    return DataSpec::Libsvm();
  }
  CsvSchema s;
  s.label = "label";
  auto names = [](const std::vector<std::string>& given, int n, const char* prefix,
                  std::vector<std::string>* out) -> Status {
    if (!given.empty() && given.size() != static_cast<size_t>(n))
      return Status::InvalidArgument(std::string(prefix == std::string("d") ? "dense" : "id") + " names: " +
                                     std::to_string(given.size()) + " for " + std::to_string(n) + " columns");
    for (int i = 0; i < n; ++i) out->push_back(given.empty() ? prefix + std::to_string(i) : given[i]);
    return Status::OK();
  };
  EMBARK_RETURN_IF_ERROR(names(a.dense_names, a.dense_cols, "d", &s.numeric));
  EMBARK_RETURN_IF_ERROR(names(a.id_names, a.id_cols, "c", &s.categorical));
  if (s.numeric.empty() && s.categorical.empty())
    return Status::InvalidArgument("arrays: no columns (give dense, ids or a CSR matrix)");
  std::set<std::string> seen{"label"};
  for (const auto* list : {&s.numeric, &s.categorical})
    for (const std::string& n : *list) {
      if (n.empty() || n.find_first_of(",\"\n\r") != std::string::npos)
        return Status::InvalidArgument("column name '" + n + "' is empty or holds a comma, quote or line break");
      if (!seen.insert(n).second) return Status::InvalidArgument("column name '" + n + "' is given twice");
    }
  if (static_cast<int>(s.categorical.size()) > kMaxFields)
    return Status::InvalidArgument("ids: " + std::to_string(s.categorical.size()) + " columns; embark takes at most " +
                                   std::to_string(kMaxFields));
  return DataSpec::Csv(s);
}

std::unique_ptr<SampleSource> NewArraySource(std::shared_ptr<const ArrayEncoder> enc, size_t block_rows) {
  const DataSpec& spec = enc->spec();
  return std::make_unique<ArraySource>(std::move(enc), spec, block_rows);
}

}  // namespace embark
