// One levelled logger writing to stderr. The level is part of the process
// context the CLI builds; library code never prints on its own.
#pragma once

#include <cstdarg>

namespace embark {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::kInfo) : level_(level) {}
  void set_level(LogLevel l) { level_ = l; }
  LogLevel level() const { return level_; }
  void Log(LogLevel l, const char* fmt, ...) const __attribute__((format(printf, 3, 4)));

 private:
  LogLevel level_;
};

}  // namespace embark
