// The Open Inference Protocol (KServe v2) request and response bodies for
// embark models: JSON in, a Batch out; probabilities in, JSON out. Kept free
// of HTTP so the parser can be fuzzed and tested on its own.
#pragma once

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
};

// Parses an infer request body. Every model input must be present once, as
// a tensor of shape [N] or [N, 1] (flat or nested data); numbers may come as
// any numeric datatype, categorical values as BYTES (strings) or integers;
// null and "" are missing values. Resets `out` to the request's N samples.
// On failure returns a message naming the offending input, row or field,
// and `out` is left empty.
std::string ParseInferRequest(std::string_view body, const RowEncoder& enc, InferRequest* req, Batch* out);

// The response: one FP32 probability per row, printed with %.9g as
// `embark predict` prints them, so the text is identical too.
std::string InferResponseJson(const std::string& model, const std::string& version, const std::string& id,
                              const float* probs, size_t n);

// {"error": message}
std::string ErrorJson(const std::string& message);

}  // namespace embark::serve
