#include "serve/request.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace embark::serve {
namespace {

using nlohmann::json;

const char* DatatypeOf(const InputField& in) {
  if (in.kind != InputField::kNumber) return "BYTES";
  return in.integer ? "INT64" : "FP64";
}

bool IsNumericDatatype(const std::string& t) {
  static const char* kTypes[] = {"BOOL",  "UINT8", "UINT16", "UINT32", "UINT64", "INT8",
                                 "INT16", "INT32", "INT64",  "FP16",   "FP32",   "FP64"};
  for (const char* k : kTypes)
    if (t == k) return true;
  return false;
}

// Flattens data of shape [N] or [N, 1] into `out`; returns an error or "".
std::string Flatten(const json& data, std::vector<const json*>* out) {
  if (!data.is_array()) return "\"data\" must be an array";
  out->clear();
  out->reserve(data.size());
  for (const json& e : data) {
    if (e.is_array()) {
      if (e.size() != 1) return "each row must hold one value, found an array of " + std::to_string(e.size());
      out->push_back(&e[0]);
    } else {
      out->push_back(&e);
    }
  }
  return {};
}

}  // namespace

std::string ModelMetadataJson(const std::string& name, const std::string& version, const RowEncoder& enc) {
  json j;
  j["name"] = name;
  j["versions"] = json::array({version});
  j["platform"] = "embark";
  json inputs = json::array();
  for (const InputField& in : enc.inputs()) inputs.push_back({{"name", in.name}, {"datatype", DatatypeOf(in)}, {"shape", {-1}}});
  j["inputs"] = inputs;
  j["outputs"] = json::array({{{"name", "probability"}, {"datatype", "FP32"}, {"shape", {-1}}}});
  return j.dump();
}

std::string ParseInferRequest(std::string_view body, const RowEncoder& enc, InferRequest* req, Batch* out) {
  out->Reset(enc.num_dense(), enc.num_fields());
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "request body is not valid JSON";
  if (!j.is_object()) return "request body must be a JSON object";
  if (auto it = j.find("id"); it != j.end()) {
    if (!it->is_string()) return "\"id\" must be a string";
    req->id = it->get<std::string>();
  }
  if (auto it = j.find("outputs"); it != j.end()) {
    if (!it->is_array()) return "\"outputs\" must be an array";
    for (const json& o : *it) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string())
        return "each entry of \"outputs\" must be an object with a string \"name\"";
      if (o["name"].get<std::string>() != "probability")
        return "unknown output '" + o["name"].get<std::string>() + "' (this model has 'probability')";
    }
  }
  auto inputs_it = j.find("inputs");
  if (inputs_it == j.end() || !inputs_it->is_array()) return "\"inputs\" must be an array of tensors";
  const auto& fields = enc.inputs();
  std::unordered_map<std::string_view, size_t> index;
  for (size_t i = 0; i < fields.size(); ++i) index.emplace(fields[i].name, i);
  std::vector<std::vector<const json*>> cols(fields.size());
  std::vector<bool> seen(fields.size(), false);
  size_t rows = 0;
  bool have_rows = false;
  for (const json& t : *inputs_it) {
    if (!t.is_object()) return "each input must be a JSON object";
    auto name_it = t.find("name");
    if (name_it == t.end() || !name_it->is_string()) return "an input has no string \"name\"";
    const std::string name = name_it->get<std::string>();
    auto f = index.find(name);
    if (f == index.end()) return "input '" + name + "' is not an input of this model";
    const size_t c = f->second;
    if (seen[c]) return "input '" + name + "' is given twice";
    seen[c] = true;
    const std::string where = "input '" + name + "': ";
    auto dt = t.find("datatype");
    if (dt == t.end() || !dt->is_string()) return where + "missing string \"datatype\"";
    const std::string datatype = dt->get<std::string>();
    if (datatype != "BYTES" && !IsNumericDatatype(datatype)) return where + "unknown datatype '" + datatype + "'";
    if (datatype != "BYTES" && fields[c].kind == InputField::kTokens) return where + "datatype must be BYTES";
    auto shape = t.find("shape");
    if (shape == t.end() || !shape->is_array() || shape->empty() || shape->size() > 2)
      return where + "\"shape\" must be [N] or [N, 1]";
    for (const json& d : *shape)
      if (!d.is_number_integer() || d.get<int64_t>() < 0) return where + "\"shape\" must hold non-negative integers";
    const int64_t n = (*shape)[0].get<int64_t>();
    if (shape->size() == 2 && (*shape)[1].get<int64_t>() != 1) return where + "\"shape\" must be [N] or [N, 1]";
    auto data = t.find("data");
    if (data == t.end()) return where + "missing \"data\"";
    if (auto e = Flatten(*data, &cols[c]); !e.empty()) return where + e;
    if (static_cast<int64_t>(cols[c].size()) != n)
      return where + "\"data\" holds " + std::to_string(cols[c].size()) + " values but \"shape\" says " +
             std::to_string(n);
    if (!have_rows) {
      rows = cols[c].size();
      have_rows = true;
    } else if (cols[c].size() != rows) {
      return where + "has " + std::to_string(cols[c].size()) + " rows, other inputs have " + std::to_string(rows);
    }
    for (size_t r = 0; r < cols[c].size(); ++r) {
      const json& v = *cols[c][r];
      const bool ok = v.is_null() || (datatype == "BYTES" ? v.is_string() : (v.is_number() || v.is_boolean()));
      if (!ok)
        return where + "row " + std::to_string(r) + ": expected " +
               (datatype == "BYTES" ? "a string" : "a number") + " or null for datatype " + datatype;
    }
  }
  for (size_t i = 0; i < fields.size(); ++i)
    if (!seen[i]) return "missing input '" + fields[i].name + "'";
  if (rows == 0) return "the request has no rows";

  std::vector<RawValue> raw(fields.size());
  for (size_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < fields.size(); ++i) {
      const json& v = *cols[i][r];
      RawValue& rv = raw[i];
      rv = RawValue{};
      if (v.is_string()) {
        rv.kind = RawValue::kString;
        rv.text = v.get_ref<const std::string&>();
      } else if (v.is_boolean()) {
        rv.kind = RawValue::kNumber;
        rv.number = v.get<bool>() ? 1 : 0;
      } else if (v.is_number()) {
        rv.kind = RawValue::kNumber;
        rv.number = v.get<double>();
      }
    }
    if (auto e = enc.Append(raw.data(), out); !e.empty()) {
      out->Reset(out->num_dense, out->num_fields);
      return "row " + std::to_string(r) + ": " + e;
    }
  }
  req->rows = rows;
  return {};
}

std::string InferResponseJson(const std::string& model, const std::string& version, const std::string& id,
                              const float* probs, size_t n) {
  std::string s;
  s.reserve(96 + n * 13);
  s += "{\"model_name\":";
  s += json(model).dump(-1, ' ', false, json::error_handler_t::replace);
  s += ",\"model_version\":";
  s += json(version).dump();
  if (!id.empty()) {
    s += ",\"id\":";
    s += json(id).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  s += ",\"outputs\":[{\"name\":\"probability\",\"datatype\":\"FP32\",\"shape\":[";
  s += std::to_string(n);
  s += "],\"data\":[";
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), i == 0 ? "%.9g" : ",%.9g", probs[i]);
    s += buf;
  }
  s += "]}]}";
  return s;
}

std::string ErrorJson(const std::string& message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace embark::serve
