#include "data/parse.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>

#include "util/hash.h"

namespace embark {
namespace {

// A short, printable excerpt of a bad token for error messages.
std::string Excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 32)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 32 && u < 127) {
      out.push_back(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    }
  }
  if (s.size() > 32) out += "...";
  return "'" + out + "'";
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Returns an error message or empty on success.
std::string ParseLabel(std::string_view s, float* out) {
  double v = 0;
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return "label " + Excerpt(s) + " is not a number";
  if (v == 1) {
    *out = 1;
  } else if (v == 0 || v == -1) {
    *out = 0;
  } else {
    return "label " + Excerpt(s) + " must be 0, 1 or -1";
  }
  return {};
}

std::string ParseFloat(std::string_view s, double* out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  if (ec == std::errc::result_out_of_range) return Excerpt(s) + " is out of range";
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return Excerpt(s) + " is not a number";
  if (!std::isfinite(*out) || std::fabs(*out) > 1e30) return Excerpt(s) + " is out of range";
  return {};
}

std::string ParseInteger(std::string_view s, double* out) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range) return Excerpt(s) + " is out of range for a 64-bit integer";
  if (ec != std::errc() || p != s.data() + s.size()) return Excerpt(s) + " is not an integer";
  *out = static_cast<double>(v);
  return {};
}

float Transform(DenseTransform t, double x) {
  if (t == DenseTransform::kNone) return static_cast<float>(x);
  return static_cast<float>(std::log1p(std::max(x, 0.0)));
}

// Why IsHex refused a token: "0123456789abcdef0" is hexadecimal, but long.
constexpr const char* kNotHexId = " is not a hexadecimal id of at most 16 digits";

bool IsHex(std::string_view s) {
  if (s.empty() || s.size() > 16) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// Appends one sample's features and keeps the batch consistent if the line
// turns out to be bad half way.
class SampleWriter {
 public:
  SampleWriter(Batch* b, const DataSpec& spec) : b_(b), spec_(spec) {}
  void Begin() {
    keys_mark_ = b_->keys.size();
    dense_.assign(spec_.num_dense, 0.0f);
    field_ = 0;
  }
  void SetDense(int i, double raw) { dense_[i] = Transform(spec_.transform, raw); }
  // Features must be added in non-decreasing field order.
  void Add(int field, uint64_t key, float value) {
    CloseFieldsBefore(field);
    b_->keys.push_back(key);
    b_->values.push_back(value);
  }
  void Commit(float label) {
    CloseFieldsBefore(spec_.num_fields);
    b_->labels.push_back(label);
    b_->dense.insert(b_->dense.end(), dense_.begin(), dense_.end());
  }
  void Rollback() {
    b_->keys.resize(keys_mark_);
    b_->values.resize(keys_mark_);
    b_->offsets.resize(b_->labels.size() * spec_.num_fields + 1);
  }

 private:
  void CloseFieldsBefore(int field) {
    while (field_ < field) {
      b_->offsets.push_back(static_cast<uint32_t>(b_->keys.size()));
      ++field_;
    }
  }
  Batch* b_;
  const DataSpec& spec_;
  std::vector<float> dense_;
  size_t keys_mark_ = 0;
  int field_ = 0;
};

struct LineContext {
  const std::string& file;
  uint64_t line;
  std::string Where(const std::string& field) const {
    return file + ":" + std::to_string(line) + ": " + (field.empty() ? "" : "field " + field + ": ");
  }
};

std::string ParseCriteo(std::string_view line, const DataSpec& spec, SampleWriter* w, const LineContext& ctx) {
  std::string_view cols[40];
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == '\t') {
      if (n < 40) cols[n] = line.substr(start, i - start);
      ++n;
      start = i + 1;
    }
  }
  if (n != 40)
    return ctx.Where("") + "expected 40 tab-separated fields (label, 13 integer, 26 categorical), found " +
           std::to_string(n);
  float label = 0;
  if (auto e = ParseLabel(cols[0], &label); !e.empty()) return ctx.Where("label") + e;
  for (int i = 0; i < 13; ++i) {
    if (cols[1 + i].empty()) continue;
    double v = 0;
    if (auto e = ParseInteger(cols[1 + i], &v); !e.empty()) return ctx.Where(spec.dense_names[i]) + e;
    w->SetDense(i, v);
  }
  for (int f = 0; f < 26; ++f) {
    std::string_view tok = cols[14 + f];
    if (tok.empty()) continue;
    if (!IsHex(tok)) return ctx.Where(spec.field_names[f]) + Excerpt(tok) + kNotHexId;
    w->Add(f, FeatureKey(f, tok, spec.hash_salt, spec.key_hash), 1.0f);
  }
  w->Commit(label);
  return {};
}

// Splits on runs of spaces/tabs.
template <typename Fn>
bool ForEachToken(std::string_view line, Fn&& fn) {
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i && !fn(line.substr(i, j - i))) return false;
    i = j;
  }
  return true;
}

std::string ParseSvmLike(std::string_view line, const DataSpec& spec, SampleWriter* w, const LineContext& ctx) {
  const bool ffm = spec.format == Format::kLibffm;
  std::string err;
  bool first = true;
  float label = 0;
  int pos = 0;
  struct Feat {
    int field;
    uint64_t key;
    float value;
  };
  std::vector<Feat> feats;
  ForEachToken(line, [&](std::string_view tok) {
    if (first) {
      first = false;
      if (auto e = ParseLabel(tok, &label); !e.empty()) err = ctx.Where("label") + e;
      return err.empty();
    }
    ++pos;
    std::string where = "#" + std::to_string(pos);
    int field = 0;
    std::string_view rest = tok;
    if (ffm) {
      size_t c = rest.find(':');
      if (c == std::string_view::npos) {
        err = ctx.Where(where) + Excerpt(tok) + " is not field:index:value";
        return false;
      }
      int64_t fv = -1;
      auto [p, ec] = std::from_chars(rest.data(), rest.data() + c, fv);
      if (ec != std::errc() || p != rest.data() + c || fv < 0 || fv >= spec.num_fields) {
        err = ctx.Where(where) + "field " + Excerpt(rest.substr(0, c)) + " is not an integer in [0, " +
              std::to_string(spec.num_fields) + ")";
        return false;
      }
      field = static_cast<int>(fv);
      rest.remove_prefix(c + 1);
    }
    size_t c = rest.rfind(':');
    if (c == std::string_view::npos || c == 0) {
      err = ctx.Where(where) + Excerpt(tok) + (ffm ? " is not field:index:value" : " is not index:value");
      return false;
    }
    double v = 0;
    if (auto e = ParseFloat(rest.substr(c + 1), &v); !e.empty()) {
      err = ctx.Where(where) + "value " + e;
      return false;
    }
    feats.push_back({field, FeatureKey(field, rest.substr(0, c), spec.hash_salt, spec.key_hash), static_cast<float>(v)});
    return true;
  });
  if (!err.empty()) return err;
  if (first) return ctx.Where("") + "missing label";
  std::stable_sort(feats.begin(), feats.end(), [](const Feat& a, const Feat& b) { return a.field < b.field; });
  for (const auto& f : feats) w->Add(f.field, f.key, f.value);
  w->Commit(label);
  return {};
}

// Splits one CSV line honouring double quotes ("" is a literal quote).
bool SplitCsv(std::string_view line, char sep, std::vector<std::string>* out) {
  out->clear();
  std::string cur;
  bool quoted = false, field_start = true;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur.push_back(c);
      }
    } else if (c == '"' && field_start) {
      quoted = true;
      field_start = false;
    } else if (c == sep) {
      out->push_back(std::move(cur));
      cur.clear();
      field_start = true;
    } else {
      cur.push_back(c);
      field_start = false;
    }
  }
  out->push_back(std::move(cur));
  return !quoted;
}

std::string ParseCsvLine(std::string_view line, const DataSpec& spec, const ColumnPlan& plan, SampleWriter* w,
                         const LineContext& ctx, std::vector<std::string>* cols) {
  const CsvSchema& s = spec.csv;
  if (!SplitCsv(line, s.separator, cols)) return ctx.Where("") + "unterminated quoted value";
  if (cols->size() != plan.role.size())
    return ctx.Where("") + "expected " + std::to_string(plan.role.size()) + " columns, found " +
           std::to_string(cols->size());
  float label = 0;
  // Features go in field order; columns may list fields in any order, so
  // collect first.
  struct Feat {
    int field;
    uint64_t key;
  };
  std::vector<Feat> feats;
  for (size_t c = 0; c < cols->size(); ++c) {
    std::string_view v = (*cols)[c];
    if (s.trim) v = Trim(v);
    const std::string& name = plan.name[c];
    switch (plan.role[c]) {
      case ColumnPlan::kIgnore:
        break;
      case ColumnPlan::kLabel:
        if (!s.positive.empty()) {
          label = std::find(s.positive.begin(), s.positive.end(), v) != s.positive.end() ? 1.0f : 0.0f;
        } else if (s.use_threshold) {
          double x = 0;
          if (auto e = ParseFloat(v, &x); !e.empty()) return ctx.Where(name) + e;
          label = x >= s.label_threshold ? 1.0f : 0.0f;
        } else if (auto e = ParseLabel(v, &label); !e.empty()) {
          return ctx.Where(name) + e;
        }
        break;
      case ColumnPlan::kNumeric: {
        if (v.empty()) break;
        double x = 0;
        if (auto e = ParseFloat(v, &x); !e.empty()) return ctx.Where(name) + e;
        w->SetDense(plan.slot[c], x);
        break;
      }
      case ColumnPlan::kCategorical:
        if (!v.empty()) feats.push_back({plan.slot[c], FeatureKey(plan.slot[c], v, spec.hash_salt, spec.key_hash)});
        break;
      case ColumnPlan::kMulti: {
        size_t i = 0;
        while (i <= v.size()) {
          size_t j = v.find(plan.multi_sep[c], i);
          if (j == std::string_view::npos) j = v.size();
          std::string_view t = v.substr(i, j - i);
          if (s.trim) t = Trim(t);
          if (!t.empty()) feats.push_back({plan.slot[c], FeatureKey(plan.slot[c], t, spec.hash_salt, spec.key_hash)});
          i = j + 1;
        }
        break;
      }
    }
  }
  std::stable_sort(feats.begin(), feats.end(), [](const Feat& a, const Feat& b) { return a.field < b.field; });
  for (const auto& f : feats) w->Add(f.field, f.key, 1.0f);
  w->Commit(label);
  return {};
}

}  // namespace

bool SplitCsvLine(std::string_view line, char sep, std::vector<std::string>* out) { return SplitCsv(line, sep, out); }

std::string_view TrimBlanks(std::string_view s) { return Trim(s); }

Result<ColumnPlan> MakeColumnPlan(const DataSpec& spec, const std::string& header_line, const std::string& file) {
  const CsvSchema& s = spec.csv;
  ColumnPlan plan;
  std::vector<std::string> names;
  if (s.header) {
    std::string_view h = header_line;
    if (!h.empty() && h.back() == '\r') h.remove_suffix(1);
    if (!SplitCsv(h, s.separator, &names)) return Status::ParseError(file + ":1: header has an unterminated quote");
    if (s.trim)
      for (auto& n : names) n = std::string(Trim(n));
  } else {
    names = s.columns;
  }
  auto index_of = [&](const std::vector<std::string>& v, const std::string& n) {
    return static_cast<int>(std::find(v.begin(), v.end(), n) - v.begin());
  };
  plan.role.assign(names.size(), ColumnPlan::kIgnore);
  plan.slot.assign(names.size(), -1);
  plan.multi_sep.assign(names.size(), 0);
  plan.name = names;
  auto require = [&](const std::string& col) -> Result<int> {
    int i = index_of(names, col);
    if (i == static_cast<int>(names.size()))
      return Status::InvalidArgument(file + ": schema column '" + col + "' is not in the " +
                                     (s.header ? "header" : "schema's column list"));
    if (std::find(names.begin() + i + 1, names.end(), col) != names.end())
      return Status::InvalidArgument(file + ":1: the header names column '" + col +
                                     "' more than once; the schema cannot tell which to read");
    return i;
  };
  EMBARK_ASSIGN_OR_RETURN(int label_col, require(s.label));
  plan.role[label_col] = ColumnPlan::kLabel;
  for (size_t k = 0; k < s.numeric.size(); ++k) {
    EMBARK_ASSIGN_OR_RETURN(int c, require(s.numeric[k]));
    plan.role[c] = ColumnPlan::kNumeric;
    plan.slot[c] = static_cast<int>(k);
  }
  for (int f = 0; f < spec.num_fields; ++f) {
    const std::string& name = spec.field_names[f];
    EMBARK_ASSIGN_OR_RETURN(int c, require(name));
    auto m = s.multi.find(name);
    plan.role[c] = m == s.multi.end() ? ColumnPlan::kCategorical : ColumnPlan::kMulti;
    plan.slot[c] = f;
    if (m != s.multi.end()) plan.multi_sep[c] = m->second.empty() ? '|' : m->second[0];
  }
  return plan;
}

void ParseChunk(const Chunk& chunk, const DataSpec& spec, const ColumnPlan* plan, size_t skip_lines, Batch* out,
                std::vector<BadLine>* bad, std::vector<uint32_t>* skipped) {
  SampleWriter w(out, spec);
  std::vector<std::string> cols;
  std::string_view text = chunk.text;
  uint64_t line_no = chunk.first_line;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    uint64_t this_line = line_no++;
    if (skip_lines > 0) {
      --skip_lines;
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {  // blank lines carry no sample
      if (skipped != nullptr) skipped->push_back(static_cast<uint32_t>(out->size()));
      continue;
    }
    LineContext ctx{chunk.file, this_line};
    std::string err;
    if (std::memchr(line.data(), '\0', line.size()) != nullptr) {
      err = ctx.Where("") + "binary data (NUL byte) in a text line";
    } else {
      w.Begin();
      switch (spec.format) {
        case Format::kCriteo:
          err = ParseCriteo(line, spec, &w, ctx);
          break;
        case Format::kLibsvm:
        case Format::kLibffm:
          err = ParseSvmLike(line, spec, &w, ctx);
          break;
        case Format::kCsv:
          err = ParseCsvLine(line, spec, *plan, &w, ctx, &cols);
          break;
      }
      if (!err.empty()) w.Rollback();
    }
    if (!err.empty()) {
      bad->push_back({this_line, std::move(err)});
      if (skipped != nullptr) skipped->push_back(static_cast<uint32_t>(out->size()));
    }
  }
}

RowEncoder::RowEncoder(const DataSpec& spec) : spec_(spec) {
  for (int i = 0; i < spec.num_dense; ++i)
    inputs_.push_back({spec.dense_names[i], InputField::kNumber, i, 0, spec.format == Format::kCriteo});
  for (int f = 0; f < spec.num_fields; ++f) {
    InputField in{spec.field_names[f], InputField::kToken, f, 0, false};
    if (spec.format == Format::kLibsvm || spec.format == Format::kLibffm) {
      in.kind = InputField::kTokens;
      in.sep = ' ';
    } else if (spec.format == Format::kCsv) {
      auto m = spec.csv.multi.find(in.name);
      if (m != spec.csv.multi.end()) {
        in.kind = InputField::kTokens;
        in.sep = m->second.empty() ? '|' : m->second[0];
      }
    }
    inputs_.push_back(in);
  }
}

std::string RowEncoder::Append(const RawValue* values, Batch* out) const {
  SampleWriter w(out, spec_);
  w.Begin();
  const bool criteo = spec_.format == Format::kCriteo;
  const bool trim = spec_.format == Format::kCsv && spec_.csv.trim;
  std::string err;
  std::string number_text;
  for (size_t i = 0; i < inputs_.size() && err.empty(); ++i) {
    const InputField& in = inputs_[i];
    const RawValue& v = values[i];
    std::string_view text = v.text;
    if (v.kind == RawValue::kString && trim) text = Trim(text);
    if (v.kind == RawValue::kMissing || (v.kind == RawValue::kString && text.empty())) continue;
    auto where = [&in] { return "field " + in.name + ": "; };
    switch (in.kind) {
      case InputField::kNumber: {
        double x = v.number;
        if (v.kind == RawValue::kString) {
          if (auto e = criteo ? ParseInteger(text, &x) : ParseFloat(text, &x); !e.empty()) err = where() + e;
        } else if (criteo && (x != std::floor(x) || std::fabs(x) >= 9.2e18)) {
          err = where() + std::to_string(x) + " is not an integer";
        } else if (!std::isfinite(x) || std::fabs(x) > 1e30) {
          err = where() + "value is out of range";
        }
        if (err.empty()) w.SetDense(in.slot, x);
        break;
      }
      case InputField::kToken:
        if (v.kind != RawValue::kString) {
          // An integer is hashed as its decimal text, as in a CSV file.
          if (criteo || v.number != std::floor(v.number) || std::fabs(v.number) >= 9.2e18) {
            err = where() + (criteo ? "expected a hexadecimal id as a string" : "expected a string or an integer");
            break;
          }
          number_text = std::to_string(static_cast<int64_t>(v.number));
          text = number_text;
        }
        if (criteo && !IsHex(text)) {
          err = where() + Excerpt(text) + kNotHexId;
          break;
        }
        w.Add(in.slot, FeatureKey(in.slot, text, spec_.hash_salt, spec_.key_hash), 1.0f);
        break;
      case InputField::kTokens:
        if (v.kind != RawValue::kString) {
          err = where() + "expected a string";
          break;
        }
        if (spec_.format == Format::kLibsvm || spec_.format == Format::kLibffm) {  // "index:value" list
          int pos = 0;
          ForEachToken(text, [&](std::string_view tok) {
            ++pos;
            size_t c = tok.rfind(':');
            if (c == std::string_view::npos || c == 0) {
              err = where() + "#" + std::to_string(pos) + ": " + Excerpt(tok) + " is not index:value";
              return false;
            }
            double x = 0;
            if (auto e = ParseFloat(tok.substr(c + 1), &x); !e.empty()) {
              err = where() + "#" + std::to_string(pos) + ": value " + e;
              return false;
            }
            w.Add(in.slot, FeatureKey(in.slot, tok.substr(0, c), spec_.hash_salt, spec_.key_hash), static_cast<float>(x));
            return true;
          });
        } else {  // CSV multi-valued column
          size_t a = 0;
          while (a <= text.size()) {
            size_t b = text.find(in.sep, a);
            if (b == std::string_view::npos) b = text.size();
            std::string_view t = text.substr(a, b - a);
            if (trim) t = Trim(t);
            if (!t.empty()) w.Add(in.slot, FeatureKey(in.slot, t, spec_.hash_salt, spec_.key_hash), 1.0f);
            a = b + 1;
          }
        }
        break;
    }
  }
  if (!err.empty()) {
    w.Rollback();
    return err;
  }
  w.Commit(0.0f);
  return {};
}

}  // namespace embark
