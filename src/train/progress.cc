#include "train/progress.h"

#include <unistd.h>

#include <cstdio>
#include <string>

namespace embark {

Progress::Progress(bool enabled, const Logger& log)
    : enabled_(enabled && log.level() >= LogLevel::kInfo), tty_(::isatty(STDERR_FILENO) != 0), log_(log) {}

void Progress::StartEpoch(int epoch, int epochs, uint64_t skipped) {
  epoch_ = epoch;
  epochs_ = epochs;
  skipped_ = skipped;
  based_ = false;
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::Update(uint64_t samples, double train_seconds, double mean_loss, uint64_t bytes_read,
                      uint64_t bytes_total) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  double frac = bytes_total > 0 ? std::min(1.0, static_cast<double>(bytes_read) / bytes_total) : -1;
  if (!based_) {
    // A resumed epoch has read past its skipped part by its first step: the
    // rate of progress counts from there.
    based_ = true;
    base_ = skipped_ > 0 ? now : start_;
    base_frac_ = skipped_ > 0 && frac > 0 ? frac : 0;
  }
  double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.2 : 10.0)) return;
  last_ = now;
  double rate = train_seconds > 0 ? samples / train_seconds : 0;
  double elapsed = std::chrono::duration<double>(now - base_).count();
  std::string eta = "?";
  if (frac - base_frac_ > 0.01) {
    int s = static_cast<int>(elapsed * (1 - frac) / (frac - base_frac_));
    eta = std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
  }
  std::string detail = detail_ ? detail_() : std::string();
  if (skipped_ > 0) detail = ", resumed at sample " + std::to_string(skipped_) + detail;
  if (tty_) {
    char bar[31];
    int fill = frac >= 0 ? static_cast<int>(frac * 30) : 0;
    for (int i = 0; i < 30; ++i) bar[i] = i < fill ? '=' : ' ';
    bar[30] = '\0';
    std::fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %3.0f%%  %.0f samples/s  loss %.5f  ETA %s%s", epoch_, epochs_, bar,
                 frac >= 0 ? frac * 100 : 0.0, rate, mean_loss, eta.c_str(), detail.c_str());
    std::fflush(stderr);
    drawn_ = true;
  } else {
    log_.Log(LogLevel::kInfo, "epoch %d/%d: %llu samples, %.0f samples/s, loss %.5f, ETA %s%s", epoch_, epochs_,
             static_cast<unsigned long long>(samples), rate, mean_loss, eta.c_str(), detail.c_str());
  }
}

void Progress::Clear() {
  if (drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace embark
