// Training progress on stderr: a live bar with samples/s, loss and ETA on a
// terminal; a plain line every few seconds otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "util/log.h"

namespace embark {

class Progress {
 public:
  Progress(bool enabled, const Logger& log);
  // `skipped`: samples of the epoch trained before a resume, which the
  // input reads past first; the ETA counts only what is trained after.
  void StartEpoch(int epoch, int epochs, uint64_t skipped = 0);
  void Update(uint64_t samples, double train_seconds, double mean_loss, uint64_t bytes_read, uint64_t bytes_total);
  void Clear();  // erase the bar before other output
  // Text appended to each line drawn (", rows ..."), asked only when a line
  // is drawn.
  void set_detail(std::function<std::string()> detail) { detail_ = std::move(detail); }

 private:
  bool enabled_, tty_;
  const Logger& log_;
  int epoch_ = 0, epochs_ = 0;
  uint64_t skipped_ = 0;
  bool based_ = false;  // base_ and base_frac_ are set
  double base_frac_ = 0;
  std::chrono::steady_clock::time_point base_;
  std::chrono::steady_clock::time_point start_, last_;
  bool drawn_ = false;
  std::function<std::string()> detail_;
};

}  // namespace embark
