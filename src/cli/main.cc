#include <cstdio>
#include <string>

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
    // CLI11 reports an unknown first word as "A subcommand is required",
    // naming neither the word nor the choices.
    if (argc > 1 && argv[1][0] != '-' && app.get_subcommands().empty()) {
      std::string names;
      for (const CLI::App* sub : app.get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
      std::fprintf(stderr, "embark: error: '%s' is not a subcommand (%s); see embark --help\n", argv[1], names.c_str());
      return static_cast<int>(CLI::ExitCodes::ExtrasError);
    }
    return app.exit(e);
  }
  return 0;
}
