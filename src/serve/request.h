// The Open Inference Protocol (KServe v2) request and response bodies for
// embark models: JSON in, a Batch out; probabilities in, JSON out. Kept free
// of HTTP so the parser can be fuzzed and tested on its own.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/batch.h"
#include "data/parse.h"

namespace embark::serve {

// The model's inputs in metadata form: {"name", "datatype", "shape"}.
std::string ModelMetadataJson(const std::string& name, const std::string& version, const RowEncoder& enc);

struct InferRequest {
  std::string id;  // echoed back when the caller sent one
  size_t rows = 0;
  int64_t k = 0;   // "parameters": {"k": K}, when the shape reads it (0: not given)
  // With RequestShape::keep_values: each row's value of each input of the
  // encoder, row-major (rows x inputs). A string's text is texts[i], not
  // values[i].text (left empty: the views would not survive a copy).
  std::vector<RawValue> values;
  std::vector<std::string> texts;
};

// What a request may hold besides a ranking model's inputs.
struct RequestShape {
  // Per input of the encoder: whether a request may give it. Inputs it may
  // not give, and those it leaves out, are missing in every row. Empty:
  // every input, each required (a ranking model).
  std::vector<bool> given;
  std::vector<std::string> outputs = {"probability"};  // names "outputs" may ask for
  bool read_k = false;       // read "parameters": {"k": integer}
  bool keep_values = false;  // fill InferRequest::values
};

// Parses an infer request body. Every model input must be present once, as
// a tensor of shape [N] or [N, 1] (flat or nested data); numbers may come as
// any numeric datatype, categorical values as BYTES (strings) or integers;
// null and "" are missing values. Resets `out` to the request's N samples.
// On failure returns a message naming the offending input, row or field,
// and `out` is left empty.
std::string ParseInferRequest(std::string_view body, const RowEncoder& enc, InferRequest* req, Batch* out);
// The same for a request of another shape (a retrieval model's: its user
// columns in, item ids and scores out, parameters.k).
std::string ParseInferRequest(std::string_view body, const RowEncoder& enc, const RequestShape& shape,
                              InferRequest* req, Batch* out);

// The model's inputs in metadata form as above, only those `given` marks,
// with `outputs` ({"name", "datatype", "shape"} each, as JSON objects).
std::string ModelMetadataJson(const std::string& name, const std::string& version, const RowEncoder& enc,
                              const std::vector<bool>& given, const std::string& outputs_json);

// The response: one FP32 probability per row, printed with %.9g as
// `embark predict` prints them, so the text is identical too.
std::string InferResponseJson(const std::string& model, const std::string& version, const std::string& id,
                              const float* probs, size_t n);

// {"error": message}
std::string ErrorJson(const std::string& message);

// Pieces of every answer: a JSON string (invalid UTF-8 replaced); the
// answer's head, `{"model_name":…,"model_version":…` and the request's id
// when it has one; floats as "%.9g" separated by commas (as `embark
// predict` and `embark retrieve` print them).
void AppendJsonString(const std::string& s, std::string* out);
void AppendResponseHead(const std::string& model, const std::string& version, const std::string& id, std::string* out);
void AppendFloats(const float* v, size_t n, std::string* out);

}  // namespace embark::serve
