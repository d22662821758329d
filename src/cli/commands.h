// The embark subcommands. Each turns its flags into library options, calls
// the library (src/train/job.h, report.h, ...) and prints the outcome; an
// error ends the process here with one line on stderr, and nowhere below.
#pragma once

#include <CLI/CLI.hpp>

namespace embark::cli {

// Registers gen, train, eval, predict, serve, params, verify, export and report on `app`.
void RegisterCommands(CLI::App* app);

}  // namespace embark::cli
