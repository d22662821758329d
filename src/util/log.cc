#include "util/log.h"

#include <cstdio>

namespace embark {

void Logger::Log(LogLevel l, const char* fmt, ...) const {
  if (static_cast<int>(l) > static_cast<int>(level_)) return;
  static const char* kNames[] = {"error", "warn", "info", "debug"};
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "[%s] %s\n", kNames[static_cast<int>(l)], buf);
}

}  // namespace embark
