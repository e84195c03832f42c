// What every subcommand shares: its entry point's shape, batman's own messages on stderr,
// and CLI11 glue. Each front end lives in its folder of src/ (see src/meson.build).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/exit_codes.hpp"

namespace batman::cli {

// Exit codes of SPEC §4 (common/exit_codes.hpp), also as cli::kExit*.
using ::batman::kExitBatmanError;
using ::batman::kExitNotExecutable;
using ::batman::kExitNotFound;
using ::batman::kExitTimeout;


// Messages prefixed "batman: " on stderr; info() is silenced by -q.
void set_quiet(bool quiet);
bool quiet();
void info(std::string_view message);
void error(std::string_view message);

// "batman 0.x", as every executable's -V/--version prints it.
std::string version_text();
// `batman --version`: version_text, then the libseccomp version, kernel release and what
// each tier can do here (doctor's probes), for bug reports (doctor.cpp).
std::string version_report();

// Colour only on a terminal, and not with NO_COLOR set (no-color.org) or TERM=dumb.
bool colour_on(int fd);
// TEXT in the SGR colour SGR ("31" red, "32" green), reset after.
std::string coloured(std::string_view text, std::string_view sgr);

// Parse `args` (without the program name) with `app`. Returns nullopt on success, otherwise
// the exit code to return (0 for --help and -V/--version, which parse() adds to every app;
// 125 for a usage error, printed as one line, with the nearest option for a mistyped one).
std::optional<int> parse(CLI::App& app, const std::vector<std::string>& args);

// Subcommands: args exclude the program and subcommand names.
int run_job(std::string_view kind, const std::vector<std::string>& args);  // parallel|isolated|multi
int command_ps(const std::vector<std::string>& args);
int command_logs(const std::vector<std::string>& args);
int command_stop(const std::vector<std::string>& args);
int command_clean(const std::vector<std::string>& args);
int command_doctor(const std::vector<std::string>& args);
int command_profiles(const std::vector<std::string>& args);
int command_supervise(const std::vector<std::string>& args);
int command_ctl(const std::vector<std::string>& args);
int command_batch(const std::vector<std::string>& args);
// `batman __complete projects|runs PROJECT|profiles`: words for shell completion (complete.cpp).
int command_complete(const std::vector<std::string>& args);

// $BATMAN_HOME, else ~/.batman-parallel.
std::string batman_home();

}  // namespace batman::cli
