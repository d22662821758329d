// Helpers shared by the unit tests: temporary directories and files.
#pragma once

#include <string>

namespace embark::testing {

// A fresh directory under $TMPDIR, removed at exit of the test process.
std::string TempDir();
std::string WriteTemp(const std::string& name, const std::string& content);

}  // namespace embark::testing
