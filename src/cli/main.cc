#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "nn/layers.h"

int main(int argc, char** argv) {
  embark::InitBlas();
  CLI::App app{"embark: train and evaluate embedding-based recommendation models (CTR prediction)", "embark"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "embark 0.1.0");
  embark::cli::RegisterCommands(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
