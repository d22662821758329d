#include "data/spec.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "data/source.h"
#include "util/json.h"

namespace embark {

const char* FormatName(Format f) {
  switch (f) {
    case Format::kCriteo: return "criteo";
    case Format::kLibsvm: return "libsvm";
    case Format::kLibffm: return "libffm";
    case Format::kCsv: return "csv";
  }
  return "?";
}

Result<Format> ParseFormat(const std::string& s) {
  if (s == "criteo") return Format::kCriteo;
  if (s == "libsvm") return Format::kLibsvm;
  if (s == "libffm") return Format::kLibffm;
  if (s == "csv") return Format::kCsv;
  return Status::InvalidArgument("unknown format '" + s + "' (expected criteo, libsvm, libffm or csv)");
}

DataSpec DataSpec::Criteo() {
  DataSpec s;
  s.format = Format::kCriteo;
  s.num_dense = 13;
  s.num_fields = 26;
  for (int i = 1; i <= 13; ++i) s.dense_names.push_back("I" + std::to_string(i));
  for (int i = 1; i <= 26; ++i) s.field_names.push_back("C" + std::to_string(i));
  return s;
}

DataSpec DataSpec::Libsvm() {
  DataSpec s;
  s.format = Format::kLibsvm;
  s.num_dense = 0;
  s.num_fields = 1;
  s.field_names = {"features"};
  return s;
}

DataSpec DataSpec::Libffm(int fields) {
  DataSpec s;
  s.format = Format::kLibffm;
  s.num_dense = 0;
  s.num_fields = fields;
  for (int i = 0; i < fields; ++i) s.field_names.push_back("field" + std::to_string(i));
  return s;
}

DataSpec DataSpec::Csv(const CsvSchema& schema) {
  DataSpec s;
  s.format = Format::kCsv;
  s.csv = schema;
  s.num_dense = static_cast<int>(schema.numeric.size());
  s.dense_names = schema.numeric;
  s.field_names = schema.categorical;
  for (const auto& [name, sep] : schema.multi) s.field_names.push_back(name);
  s.num_fields = static_cast<int>(s.field_names.size());
  return s;
}

Result<CsvSchema> LoadCsvSchema(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read '" + path + "': " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ParseCsvSchema(text, path);
}

Result<CsvSchema> ParseCsvSchema(std::string_view text, const std::string& path) {
  toml::table t;
  try {
    t = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return Status::ParseError(path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  CsvSchema s;
  auto bad = [&](const std::string& key, const std::string& why) {
    return Status::InvalidArgument(path + ": key '" + key + "': " + why);
  };
  auto strings = [&](const char* key, std::vector<std::string>* out) -> Status {
    if (!t.contains(key)) return Status::OK();
    auto* arr = t[key].as_array();
    if (arr == nullptr) return bad(key, "expected an array of strings");
    for (auto& v : *arr) {
      auto sv = v.value<std::string>();
      if (!sv) return bad(key, "expected an array of strings");
      out->push_back(*sv);
    }
    return Status::OK();
  };
  static const char* kKnown[] = {"separator", "header", "trim", "columns", "label", "label_threshold",
                                 "positive", "numeric", "categorical", "multi", "user", "item", "item_id"};
  for (auto& [k, v] : t) {
    if (std::find(std::begin(kKnown), std::end(kKnown), k.str()) == std::end(kKnown))
      return bad(std::string(k.str()), "unknown key");
  }
  if (t.contains("separator")) {
    auto sep = t["separator"].value<std::string>();
    if (!sep) return bad("separator", "expected a string");
    std::string v = *sep == "\\t" ? "\t" : *sep;
    if (v.size() != 1) return bad("separator", "must be one character");
    s.separator = v[0];
  }
  if (t.contains("header")) {
    auto h = t["header"].value<bool>();
    if (!h) return bad("header", "expected true or false");
    s.header = *h;
  }
  if (t.contains("trim")) s.trim = t["trim"].value_or(false);
  EMBARK_RETURN_IF_ERROR(strings("columns", &s.columns));
  EMBARK_RETURN_IF_ERROR(strings("positive", &s.positive));
  EMBARK_RETURN_IF_ERROR(strings("numeric", &s.numeric));
  EMBARK_RETURN_IF_ERROR(strings("categorical", &s.categorical));
  auto label = t["label"].value<std::string>();
  if (!label) return bad("label", "required: the name of the label column");
  s.label = *label;
  if (t.contains("label_threshold")) {
    auto th = t["label_threshold"].value<double>();
    if (!th) return bad("label_threshold", "expected a number");
    if (!std::isfinite(*th)) return bad("label_threshold", "must be a finite number");
    s.label_threshold = *th;
    s.use_threshold = true;
  }
  if (t.contains("multi")) {
    auto* m = t["multi"].as_table();
    if (m == nullptr) return bad("multi", "expected a table of column = \"separator\"");
    for (auto& [k, v] : *m) {
      auto sep = v.value<std::string>();
      if (!sep || sep->size() != 1) return bad("multi." + std::string(k.str()), "separator must be one character");
      s.multi[std::string(k.str())] = *sep;
    }
  }
  if (!s.header && s.columns.empty()) return bad("columns", "required when header = false");
  for (size_t i = 0; i < s.columns.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (s.columns[i] == s.columns[j]) return bad("columns", "names column '" + s.columns[i] + "' twice");
  // Each column has one role: the label is not also a feature, and no
  // column is read twice (numeric and categorical, or listed twice).
  std::map<std::string, std::string> role;
  auto claim = [&](const std::string& col, const std::string& key) -> Status {
    auto [it, fresh] = role.emplace(col, key);
    if (fresh) return Status::OK();
    if (it->second == "label") return bad(key, "column '" + col + "' is the label; it cannot also be a feature");
    if (it->second == key) return bad(key, "lists column '" + col + "' twice");
    return bad(key, "column '" + col + "' is already in '" + it->second + "'; a column has one role");
  };
  EMBARK_RETURN_IF_ERROR(claim(s.label, "label"));
  for (const auto& c : s.numeric) EMBARK_RETURN_IF_ERROR(claim(c, "numeric"));
  for (const auto& c : s.categorical) EMBARK_RETURN_IF_ERROR(claim(c, "categorical"));
  for (const auto& [c, sep] : s.multi) EMBARK_RETURN_IF_ERROR(claim(c, "multi"));
  if (s.categorical.empty() && s.multi.empty()) return bad("categorical", "at least one categorical or multi column is needed");
  EMBARK_RETURN_IF_ERROR(strings("user", &s.user));
  EMBARK_RETURN_IF_ERROR(strings("item", &s.item));
  if (t.contains("item_id")) {
    auto v = t["item_id"].value<std::string>();
    if (!v) return bad("item_id", "expected a string");
    s.item_id = *v;
  }
  if (!s.user.empty() || !s.item.empty() || !s.item_id.empty()) {
    // Towers: every feature column in exactly one of them.
    if (s.user.empty() || s.item.empty()) return bad(s.user.empty() ? "user" : "item", "both towers need columns");
    std::map<std::string, std::string> tower;
    for (const char* key : {"user", "item"})
      for (const auto& c : std::string(key) == "user" ? s.user : s.item) {
        auto it = role.find(c);
        if (it == role.end() || it->second == "label")
          return bad(key, "column '" + c + "' is not a numeric, categorical or multi column");
        auto [at, fresh] = tower.emplace(c, key);
        if (!fresh) return bad(key, "column '" + c + "' is already in '" + at->second + "'");
      }
    for (const auto& [c, r] : role)
      if (r != "label" && !tower.count(c)) return bad("user", "column '" + c + "' is in neither tower (user, item)");
    if (s.item_id.empty()) {
      for (const auto& c : s.item)
        if (role[c] == "categorical") {
          s.item_id = c;
          break;
        }
      if (s.item_id.empty()) return bad("item_id", "required: the item tower has no categorical column to name items");
    }
    if (tower[s.item_id] != "item" || role[s.item_id] != "categorical")
      return bad("item_id", "column '" + s.item_id + "' must be a categorical column of the item tower");
  }
  return s;
}

Result<TowerFields> TowersOf(const DataSpec& spec) {
  const CsvSchema& c = spec.csv;
  if (spec.format != Format::kCsv || c.user.empty() || c.item.empty())
    return Status::InvalidArgument(
        "a two-tower model needs its towers from the CSV schema: keys user = [...] and item = [...] naming the "
        "feature columns of each (docs/retrieval.md)");
  TowerFields t;
  auto in = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  for (int f = 0; f < spec.num_fields; ++f) {
    const std::string& n = spec.field_names[f];
    (in(c.user, n) ? t.user_fields : t.item_fields).push_back(f);
    if (n == c.item_id) t.item_id_field = f;
  }
  for (int d = 0; d < spec.num_dense; ++d) (in(c.user, spec.dense_names[d]) ? t.user_dense : t.item_dense).push_back(d);
  if (t.item_id_field < 0) return Status::InvalidArgument("the schema's item_id '" + c.item_id + "' is not a field");
  return t;
}

std::string DataSpec::ToJson() const {
  nlohmann::json j;
  j["format"] = FormatName(format);
  j["num_dense"] = num_dense;
  j["num_fields"] = num_fields;
  j["dense_names"] = dense_names;
  j["field_names"] = field_names;
  j["hash_salt"] = hash_salt;
  j["key_hash"] = key_hash;
  j["transform"] = transform == DenseTransform::kLog1p ? "log1p" : "none";
  j["csv"] = {{"separator", std::string(1, csv.separator)}, {"header", csv.header}, {"trim", csv.trim},
              {"columns", csv.columns}, {"label", csv.label}, {"label_threshold", csv.label_threshold},
              {"use_threshold", csv.use_threshold}, {"positive", csv.positive}, {"numeric", csv.numeric},
              {"categorical", csv.categorical}, {"multi", csv.multi}};
  if (!csv.user.empty()) {
    j["csv"]["user"] = csv.user;
    j["csv"]["item"] = csv.item;
    j["csv"]["item_id"] = csv.item_id;
  }
  return j.dump(2);
}

Result<DataSpec> DataSpec::FromJson(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    DataSpec s;
    EMBARK_ASSIGN_OR_RETURN(s.format, ParseFormat(j.at("format").get<std::string>()));
    s.num_dense = IntAt<int>(j, "num_dense", 0, 1 << 20);
    s.num_fields = IntAt<int>(j, "num_fields", 1, kMaxFields);
    s.dense_names = j.at("dense_names").get<std::vector<std::string>>();
    s.field_names = j.at("field_names").get<std::vector<std::string>>();
    s.hash_salt = IntAt<uint64_t>(j, "hash_salt");
    s.key_hash = j.contains("key_hash") ? IntAt<int>(j, "key_hash", 1, 2) : 1;
    s.transform = j.at("transform").get<std::string>() == "none" ? DenseTransform::kNone : DenseTransform::kLog1p;
    const auto& c = j.at("csv");
    s.csv.separator = c.at("separator").get<std::string>().at(0);
    s.csv.header = c.at("header").get<bool>();
    s.csv.trim = c.at("trim").get<bool>();
    s.csv.columns = c.at("columns").get<std::vector<std::string>>();
    s.csv.label = c.at("label").get<std::string>();
    s.csv.label_threshold = c.at("label_threshold").get<double>();
    s.csv.use_threshold = c.at("use_threshold").get<bool>();
    s.csv.positive = c.at("positive").get<std::vector<std::string>>();
    s.csv.numeric = c.at("numeric").get<std::vector<std::string>>();
    s.csv.categorical = c.at("categorical").get<std::vector<std::string>>();
    s.csv.multi = c.at("multi").get<std::map<std::string, std::string>>();
    if (c.contains("user")) {
      s.csv.user = c.at("user").get<std::vector<std::string>>();
      s.csv.item = c.at("item").get<std::vector<std::string>>();
      s.csv.item_id = c.at("item_id").get<std::string>();
    }
    if (s.num_dense < 0 || s.num_fields < 1 || s.num_fields > kMaxFields ||
        static_cast<int>(s.field_names.size()) != s.num_fields ||
        static_cast<int>(s.dense_names.size()) != s.num_dense)
      return Status::Corruption("data spec has inconsistent field counts");
    return s;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("data spec is not valid: ") + e.what());
  }
}

bool IsReReadable(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  return ec || st.type() == std::filesystem::file_type::regular;  // missing: the open says so
}

Status CheckReadOnce(const std::vector<std::string>& files, const std::string& flag) {
  for (size_t i = 0; i < files.size(); ++i) {
    if (IsReReadable(files[i])) continue;
    struct stat a {};
    if (::stat(files[i].c_str(), &a) != 0) continue;  // missing: the open says so
    for (size_t j = 0; j < i; ++j) {
      // By device and inode (std::filesystem::equivalent refuses FIFOs).
      struct stat b {};
      if (::stat(files[j].c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return Status::InvalidArgument(flag + " '" + files[i] + "' is given twice; a pipe or device can be read once");
    }
  }
  return Status::OK();
}

namespace {
Result<std::string> FirstLines(const std::string& path, size_t bytes, const char* what) {
  // Reading a pipe's head would consume it: the training read could not
  // see those lines again (and would wait for a writer that is gone).
  if (!IsReReadable(path))
    return Status::InvalidArgument(path + ": is a pipe or device, which can be read once, so " + what +
                                   " cannot be read from it first: give " +
                                   (std::string(what) == "the format" ? "--format" : "--ffm-fields"));
  EMBARK_ASSIGN_OR_RETURN(auto src, OpenSource(path));
  std::string text(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    EMBARK_ASSIGN_OR_RETURN(size_t n, src->Read(text.data() + got, bytes - got));
    if (n == 0) break;
    got += n;
  }
  text.resize(got);
  return text;
}
}  // namespace

Result<Format> SniffFormat(const std::string& path) {
  constexpr size_t kHead = 1 << 16;
  EMBARK_ASSIGN_OR_RETURN(std::string text, FirstLines(path, kHead, "the format"));
  if (text.empty()) return Status::ParseError(path + ": file is empty");
  // The first line that is not blank: blank lines carry no sample, here as
  // in the parser.
  std::string line;
  uint64_t line_no = 1;
  for (size_t pos = 0;; ++line_no) {
    const size_t nl = text.find('\n', pos);
    line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) break;
    if (nl == std::string::npos) {
      if (text.size() < kHead) return Status::InvalidArgument(path + ": has only blank lines");
      return Status::InvalidArgument(path + ": its first " + std::to_string(kHead >> 10) +
                                     " KiB are blank lines, so the format cannot be told: pass --format");
    }
    pos = nl + 1;
  }
  const std::string where = path + ": cannot tell the format from line " + std::to_string(line_no);
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x09)
      return Status::InvalidArgument(path + ": line " + std::to_string(line_no) + " is binary data, not text");
  if (std::count(line.begin(), line.end(), '\t') == 39) return Format::kCriteo;
  const size_t sp = line.find(' ');
  bool numeric_label = false;
  if (sp != std::string::npos && sp > 0) {
    double label = 0;
    const char* begin = line.data() + (line[0] == '+' ? 1 : 0);
    auto [end, ec] = std::from_chars(begin, line.data() + sp, label);
    numeric_label = ec == std::errc() && end == line.data() + sp;
  }
  if (numeric_label) {
    std::string tok = line.substr(sp + 1, line.find(' ', sp + 1) - sp - 1);
    auto colons = std::count(tok.begin(), tok.end(), ':');
    if (colons == 2) return Format::kLibffm;
    if (colons == 1) return Format::kLibsvm;
  }
  return Status::InvalidArgument(where + "; pass --format (and --schema for CSV)");
}

Result<int> SniffFfmFields(const std::string& path) {
  constexpr size_t kHead = 4 << 20;
  EMBARK_ASSIGN_OR_RETURN(std::string text, FirstLines(path, kHead, "the number of fields"));
  int64_t max_field = -1;
  size_t pos = 0;
  for (uint64_t line_no = 1; pos < text.size(); ++line_no) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      if (text.size() >= kHead) break;  // a line cut by the read: ignored
      nl = text.size();                 // the file's last line, without a newline
    }
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    size_t i = line.find(' ');
    while (i != std::string_view::npos && i < line.size()) {
      size_t j = i + 1;
      int64_t v = 0;
      auto [p, ec] = std::from_chars(line.data() + j, line.data() + line.size(), v);
      if (p < line.data() + line.size() && *p == ':' && (ec == std::errc::result_out_of_range || v >= kMaxFields))
        return Status::ParseError(path + ":" + std::to_string(line_no) + ": field index '" +
                                  std::string(line.substr(j, static_cast<size_t>(p - (line.data() + j)))) +
                                  "' is beyond the " + std::to_string(kMaxFields) +
                                  " fields embark takes (libffm fields count from 0)");
      if (ec == std::errc() && p < line.data() + line.size() && *p == ':') max_field = std::max(max_field, v);
      i = line.find(' ', j);
    }
  }
  if (max_field < 0) return Status::ParseError(path + ": no field:index:value features found in the first lines");
  return static_cast<int>(max_field + 1);
}

Result<DataSpec> ResolveDataSpec(const std::string& format, int ffm_fields, const std::string& schema_path,
                                 const std::string& first_file) {
  Format f = Format::kCsv;
  if (format != "auto") {
    EMBARK_ASSIGN_OR_RETURN(f, ParseFormat(format));
  } else if (schema_path.empty()) {
    EMBARK_ASSIGN_OR_RETURN(f, SniffFormat(first_file));
  }
  switch (f) {
    case Format::kCriteo: return DataSpec::Criteo();
    case Format::kLibsvm: return DataSpec::Libsvm();
    case Format::kLibffm: {
      int fields = ffm_fields;
      if (fields <= 0) {
        EMBARK_ASSIGN_OR_RETURN(fields, SniffFfmFields(first_file));
      }
      return DataSpec::Libffm(fields);
    }
    case Format::kCsv: {
      if (schema_path.empty()) return Status::InvalidArgument("--format csv needs --schema FILE (see docs/data.md)");
      EMBARK_ASSIGN_OR_RETURN(CsvSchema schema, LoadCsvSchema(schema_path));
      DataSpec spec = DataSpec::Csv(schema);
      if (spec.num_fields > kMaxFields)
        return Status::InvalidArgument(schema_path + ": " + std::to_string(spec.num_fields) +
                                       " categorical and multi-valued columns; embark takes at most " +
                                       std::to_string(kMaxFields));
      return spec;
    }
  }
  return Status::InvalidArgument("unknown format '" + format + "'");
}

}  // namespace embark
