#include "test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace embark::testing {
namespace {
struct Cleanup {
  std::string dir;
  ~Cleanup() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};
Cleanup g_cleanup;
}  // namespace

std::string TempDir() {
  if (g_cleanup.dir.empty()) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/embark-test-XXXXXX";
    char* d = ::mkdtemp(tmpl.data());
    g_cleanup.dir = d ? d : "/tmp";
  }
  return g_cleanup.dir;
}

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

}  // namespace embark::testing
