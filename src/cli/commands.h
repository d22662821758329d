// The embark subcommands. Each takes parsed options and returns a process
// exit code; main() only dispatches.
#pragma once

#include <CLI/CLI.hpp>

namespace embark::cli {

// Registers gen, train, eval, predict and params on `app`.
void RegisterCommands(CLI::App* app);

}  // namespace embark::cli
