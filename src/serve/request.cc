#include "serve/request.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <simdjson.h>

namespace embark::serve {
namespace {

using nlohmann::json;

const char* DatatypeOf(const InputField& in) {
  if (in.kind != InputField::kNumber) return "BYTES";
  return in.integer ? "INT64" : "FP64";
}

bool IsNumericDatatype(std::string_view t) {
  static const char* kTypes[] = {"BOOL",  "UINT8", "UINT16", "UINT32", "UINT64", "INT8",
                                 "INT16", "INT32", "INT64",  "FP16",   "FP32",   "FP64"};
  for (const char* k : kTypes)
    if (t == k) return true;
  return false;
}

namespace dom = simdjson::dom;

// Flattens data of shape [N] or [N, 1] into `out`; returns an error or "".
std::string Flatten(dom::element data, std::vector<dom::element>* out) {
  dom::array rows;
  if (data.get_array().get(rows) != simdjson::SUCCESS) return "\"data\" must be an array";
  out->clear();
  out->reserve(rows.size());
  for (dom::element e : rows) {
    dom::array one;
    if (e.get_array().get(one) == simdjson::SUCCESS) {
      if (one.size() != 1) return "each row must hold one value, found an array of " + std::to_string(one.size());
      out->push_back(one.at(0).value_unsafe());
    } else {
      out->push_back(e);
    }
  }
  return {};
}

// A string member, or false when absent or not a string.
bool StringMember(dom::object o, std::string_view key, std::string_view* out) {
  return o[key].get_string().get(*out) == simdjson::SUCCESS;
}

// Requests up to this size reuse their thread's parser (and its buffers);
// larger ones get a parser of their own, freed afterwards.
constexpr size_t kReusedParserBytes = 1 << 20;

}  // namespace

std::string ModelMetadataJson(const std::string& name, const std::string& version, const RowEncoder& enc) {
  return ModelMetadataJson(name, version, enc, {},
                           R"([{"name":"probability","datatype":"FP32","shape":[-1]}])");
}

std::string ModelMetadataJson(const std::string& name, const std::string& version, const RowEncoder& enc,
                              const std::vector<bool>& given, const std::string& outputs_json) {
  json j;
  j["name"] = name;
  j["versions"] = json::array({version});
  j["platform"] = "embark";
  json inputs = json::array();
  for (size_t i = 0; i < enc.inputs().size(); ++i) {
    const InputField& in = enc.inputs()[i];
    if (given.empty() || given[i]) inputs.push_back({{"name", in.name}, {"datatype", DatatypeOf(in)}, {"shape", {-1}}});
  }
  j["inputs"] = inputs;
  j["outputs"] = json::parse(outputs_json);
  // Input names come from the training data's schema: bytes that are not
  // UTF-8 are replaced, never thrown on.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ParseInferRequest(std::string_view body, const RowEncoder& enc, InferRequest* req, Batch* out) {
  static const RequestShape ranking;
  return ParseInferRequest(body, enc, ranking, req, out);
}

std::string ParseInferRequest(std::string_view body, const RowEncoder& enc, const RequestShape& shape,
                              InferRequest* req, Batch* out) {
  out->Reset(enc.num_dense(), enc.num_fields());
  thread_local dom::parser reused;
  dom::parser own;
  dom::parser& parser = body.size() <= kReusedParserBytes ? reused : own;
  dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) return "request body is not valid JSON";
  dom::object top;
  if (doc.get_object().get(top) != simdjson::SUCCESS) return "request body must be a JSON object";
  if (auto id = top["id"]; id.error() != simdjson::NO_SUCH_FIELD) {
    std::string_view text;
    if (id.get_string().get(text) != simdjson::SUCCESS) return "\"id\" must be a string";
    req->id = std::string(text);
  }
  if (auto outputs = top["outputs"]; outputs.error() != simdjson::NO_SUCH_FIELD) {
    dom::array list;
    if (outputs.get_array().get(list) != simdjson::SUCCESS) return "\"outputs\" must be an array";
    for (dom::element o : list) {
      dom::object obj;
      std::string_view name;
      if (o.get_object().get(obj) != simdjson::SUCCESS || !StringMember(obj, "name", &name))
        return "each entry of \"outputs\" must be an object with a string \"name\"";
      if (std::find(shape.outputs.begin(), shape.outputs.end(), name) == shape.outputs.end()) {
        std::string have;
        for (const std::string& o : shape.outputs) have += (have.empty() ? "'" : ", '") + o + "'";
        return "unknown output '" + std::string(name) + "' (this model has " + have + ")";
      }
    }
  }
  if (auto params = top["parameters"]; shape.read_k && params.error() != simdjson::NO_SUCH_FIELD) {
    dom::object p;
    if (params.get_object().get(p) != simdjson::SUCCESS) return "\"parameters\" must be an object";
    if (auto k = p["k"]; k.error() != simdjson::NO_SUCH_FIELD) {
      int64_t v = 0;
      if (k.get_int64().get(v) != simdjson::SUCCESS || v < 1)
        return "parameter 'k' must be a positive integer";
      req->k = v;
    }
  }
  dom::array inputs;
  if (top["inputs"].get_array().get(inputs) != simdjson::SUCCESS) return "\"inputs\" must be an array of tensors";
  const auto& fields = enc.inputs();
  std::vector<std::vector<dom::element>> cols(fields.size());
  std::vector<bool> seen(fields.size(), false);
  size_t rows = 0;
  bool have_rows = false;
  size_t next = 0;  // inputs usually come in the model's order: try that first
  for (dom::element t : inputs) {
    dom::object tensor;
    if (t.get_object().get(tensor) != simdjson::SUCCESS) return "each input must be a JSON object";
    std::string_view name;
    if (!StringMember(tensor, "name", &name)) return "an input has no string \"name\"";
    size_t c = next < fields.size() && fields[next].name == name ? next : fields.size();
    for (size_t i = 0; c == fields.size() && i < fields.size(); ++i)
      if (fields[i].name == name) c = i;
    if (c == fields.size() || (!shape.given.empty() && !shape.given[c]))
      return "input '" + std::string(name) + "' is not an input of this model";
    next = c + 1;
    if (seen[c]) return "input '" + std::string(name) + "' is given twice";
    seen[c] = true;
    auto where = [&] { return "input '" + std::string(name) + "': "; };
    std::string_view datatype;
    if (!StringMember(tensor, "datatype", &datatype)) return where() + "missing string \"datatype\"";
    if (datatype != "BYTES" && !IsNumericDatatype(datatype))
      return where() + "unknown datatype '" + std::string(datatype) + "'";
    if (datatype != "BYTES" && fields[c].kind == InputField::kTokens) return where() + "datatype must be BYTES";
    dom::array shape;
    if (tensor["shape"].get_array().get(shape) != simdjson::SUCCESS || shape.size() == 0 || shape.size() > 2)
      return where() + "\"shape\" must be [N] or [N, 1]";
    int64_t dims[2] = {0, 1};
    size_t d = 0;
    for (dom::element e : shape) {
      if (e.get_int64().get(dims[d]) != simdjson::SUCCESS || dims[d] < 0)
        return where() + "\"shape\" must hold non-negative integers";
      ++d;
    }
    if (dims[1] != 1) return where() + "\"shape\" must be [N] or [N, 1]";
    dom::element data;
    if (tensor["data"].get(data) != simdjson::SUCCESS) return where() + "missing \"data\"";
    if (auto e = Flatten(data, &cols[c]); !e.empty()) return where() + e;
    if (static_cast<int64_t>(cols[c].size()) != dims[0])
      return where() + "\"data\" holds " + std::to_string(cols[c].size()) + " values but \"shape\" says " +
             std::to_string(dims[0]);
    if (!have_rows) {
      rows = cols[c].size();
      have_rows = true;
    } else if (cols[c].size() != rows) {
      return where() + "has " + std::to_string(cols[c].size()) + " rows, other inputs have " + std::to_string(rows);
    }
    const bool bytes = datatype == "BYTES";
    for (size_t r = 0; r < cols[c].size(); ++r) {
      const dom::element_type type = cols[c][r].type();
      const bool number = type == dom::element_type::INT64 || type == dom::element_type::UINT64 ||
                          type == dom::element_type::DOUBLE || type == dom::element_type::BOOL;
      const bool ok = type == dom::element_type::NULL_VALUE || (bytes ? type == dom::element_type::STRING : number);
      if (!ok)
        return where() + "row " + std::to_string(r) + ": expected " + (bytes ? "a string" : "a number") +
               " or null for datatype " + std::string(datatype);
    }
  }
  for (size_t i = 0; i < fields.size() && shape.given.empty(); ++i)
    if (!seen[i]) return "missing input '" + fields[i].name + "'";
  if (rows == 0) return "the request has no rows";
  if (shape.keep_values) {
    req->values.assign(rows * fields.size(), RawValue{});
    req->texts.assign(rows * fields.size(), std::string());
  }

  std::vector<RawValue> raw(fields.size());
  for (size_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < fields.size(); ++i) {
      RawValue& rv = raw[i];
      rv = RawValue{};
      if (!seen[i]) continue;  // an input the request leaves out: missing
      const dom::element v = cols[i][r];
      switch (v.type()) {
        case dom::element_type::STRING:
          rv.kind = RawValue::kString;
          rv.text = v.get_string().value_unsafe();
          break;
        case dom::element_type::BOOL:
          rv.kind = RawValue::kNumber;
          rv.number = v.get_bool().value_unsafe() ? 1 : 0;
          break;
        case dom::element_type::INT64:
          rv.kind = RawValue::kNumber;
          rv.number = static_cast<double>(v.get_int64().value_unsafe());
          break;
        case dom::element_type::UINT64:
          rv.kind = RawValue::kNumber;
          rv.number = static_cast<double>(v.get_uint64().value_unsafe());
          break;
        case dom::element_type::DOUBLE:
          rv.kind = RawValue::kNumber;
          rv.number = v.get_double().value_unsafe();
          break;
        default:
          break;  // null: missing
      }
      if (shape.keep_values) {
        req->values[r * fields.size() + i] = RawValue{rv.kind, rv.number, {}};
        req->texts[r * fields.size() + i] = std::string(rv.text);
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

void AppendJsonString(const std::string& s, std::string* out) {
  *out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

void AppendResponseHead(const std::string& model, const std::string& version, const std::string& id, std::string* s) {
  *s += "{\"model_name\":";
  AppendJsonString(model, s);
  *s += ",\"model_version\":";
  AppendJsonString(version, s);
  if (!id.empty()) {
    *s += ",\"id\":";
    AppendJsonString(id, s);
  }
}

void AppendFloats(const float* v, size_t n, std::string* out) {
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), i == 0 ? "%.9g" : ",%.9g", v[i]);
    *out += buf;
  }
}

std::string InferResponseJson(const std::string& model, const std::string& version, const std::string& id,
                              const float* probs, size_t n) {
  std::string s;
  s.reserve(96 + n * 13);
  AppendResponseHead(model, version, id, &s);
  s += ",\"outputs\":[{\"name\":\"probability\",\"datatype\":\"FP32\",\"shape\":[";
  s += std::to_string(n);
  s += "],\"data\":[";
  AppendFloats(probs, n, &s);
  s += "]}]}";
  return s;
}

std::string ErrorJson(const std::string& message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace embark::serve
