// Fuzz target for the TOML readers: the training config (train/config.h)
// and the CSV schema (data/spec.h). The first byte picks which. Any bytes
// must give an error or a value that survives its own round trip (a config
// written by ConfigToToml reads back to the same text), never a crash.
#include <cstdint>
#include <string>
#include <string_view>

#include "data/spec.h"
#include "fuzz/fuzz_util.h"
#include "train/config.h"

using embark::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    embark::TrainConfig cfg;
    if (!embark::ParseConfigToml(text, "fuzz.toml", &cfg).ok()) return 0;
    (void)embark::ValidateConfig(cfg);
    const std::string once = embark::ConfigToToml(cfg);
    embark::TrainConfig again;
    Check(embark::ParseConfigToml(once, "again.toml", &again).ok());
    Check(embark::ConfigToToml(again) == once);
  } else {
    auto s = embark::ParseCsvSchema(text, "fuzz.toml");
    if (!s.ok()) return 0;
    const embark::DataSpec spec = embark::DataSpec::Csv(s.value());
    auto back = embark::DataSpec::FromJson(spec.ToJson());
    Check(back.ok() || spec.num_fields > embark::kMaxFields);
  }
  return 0;
}
