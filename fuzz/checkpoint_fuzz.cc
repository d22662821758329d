// Fuzz target for the checkpoint readers: a table file (checkpoint/
// table_file.h: header, blocks with their checksums, end block), the data
// spec (data_spec.json), and trainer.json with the stream position it
// carries (given to a directory source's and a followed file's Seek), and
// the softmax objective's saved item frequencies (objective.bin). The
// first byte picks which (0xff: objective.bin); for a table, the second picks the row shape. Any bytes must give an error or rows of the declared
// shape, and no allocation is sized by an unchecked number from the file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/table_file.h"
#include "stream/source.h"
#include "data/spec.h"
#include "model/objective.h"
#include "fuzz/fuzz_util.h"
#include "util/env.h"

using embark::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  if (data[0] == 0xff) {
    embark::SoftmaxOptions o;
    o.dim = 2;
    auto obj = embark::NewInBatchSoftmax(o);
    const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    if (!obj->LoadState(bytes).ok()) return 0;
    // What loads saves again as bytes that load to the same state.
    const std::string saved = obj->SaveState();
    auto again = embark::NewInBatchSoftmax(o);
    Check(again->LoadState(saved).ok() && again->SaveState() == saved);
    return 0;
  }
  if (data[0] % 3 == 2) {
    auto j = nlohmann::json::parse(data + 1, data + size, nullptr, false);
    if (j.is_discarded()) return 0;
    try {
      embark::TrainerState st = embark::TrainerStateFromJson(j);
      Check(st.step >= 0);
    } catch (const std::exception&) {
    }
    static const std::string dir = "/tmp/embark-checkpoint-fuzz-dir-" + std::to_string(::getpid());
    static const std::string file = dir + "/f";
    static bool made = [] {
      std::string cmd = "mkdir -p " + dir + " && printf 'a\\nb\\n' > " + file;
      return std::system(cmd.c_str()) == 0;
    }();
    if (!made) return 0;
    for (const std::string& where : {dir, file}) {
      auto src = embark::OpenLineSource(where);
      if (!src.ok()) continue;
      std::string note;
      (void)src.value()->Seek(j, &note);
    }
    return 0;
  }
  if (data[0] % 3 == 0) {
    auto spec = embark::DataSpec::FromJson(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
    if (spec.ok()) {
      Check(spec->num_fields >= 1 && spec->num_fields <= embark::kMaxFields);
      Check(static_cast<int>(spec->field_names.size()) == spec->num_fields);
    }
    return 0;
  }
  static const std::string path = "/tmp/embark-checkpoint-fuzz-" + std::to_string(::getpid()) + ".bin";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data + 2, 1, size - 2, f);
  std::fclose(f);
  const int dim = 1 + data[1] % 4, width = dim * (1 + (data[1] >> 2) % 3);
  auto r = embark::TableFileReader::Open(embark::Env::Posix(), path, dim, width);
  if (!r.ok()) return 0;
  embark::RowBatch block;
  for (int i = 0; i < 1000; ++i) {
    auto more = r.value()->Next(&block);
    if (!more.ok() || !more.value()) break;
    Check(block.rows.size() == block.keys.size() * static_cast<size_t>(width));
    Check(block.meta.empty() || block.meta.size() == block.keys.size());
  }
  return 0;
}
