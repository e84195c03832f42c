// `batman ps [--all] [--project P] [--format table|json] [--wide] [-q]`: runs across every
// project, in a table that fits the terminal ($COLUMNS; whole cells into a pipe).
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/duration.hpp"
#include "common/names.hpp"
#include "common/time_format.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/runs.hpp"
#include "src/cli/table.hpp"

namespace batman::cli {
namespace {

// The width to fit: $COLUMNS, else the terminal's (80 when it says none); 0 (no limit) when
// the table goes to a pipe or a file, as procps' ps does, so scripts get whole cells.
std::size_t output_width() {
  if (const char* c = std::getenv("COLUMNS"); c && *c) {
    char* end = nullptr;
    long v = std::strtol(c, &end, 10);
    if (*end == '\0' && v >= 20 && v <= 10000) return static_cast<std::size_t>(v);
  }
  if (!::isatty(1)) return 0;
  winsize ws{};
  if (::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 80;
}

// STATUS in colour on a terminal (not with NO_COLOR): live green, a failure red.
std::string status_cell(const std::string& status, bool colour) {
  const std::string text = printable(status);
  if (!colour) return text;
  if (status == "running" || status == "starting") return coloured(text, "32");
  if (status == "failed" || status == "fatal" || status == "killed" || status == "oom" || status == "lost" ||
      status == "timeout")
    return coloured(text, "31");
  return text;
}

}  // namespace

int command_ps(const std::vector<std::string>& args) {
  bool all = false, as_json = false, wide = false, ids_only = false;
  std::string project, format = "table";
  CLI::App app{"List running runs across every project (finished ones too with --all).", "batman ps"};
  app.add_flag("-a,--all", all, "include finished runs");
  app.add_option("-p,--project", project, "only this project");
  app.add_option("--format", format, "table (default) | json");
  app.add_flag("--json", as_json, "same as --format json");
  app.add_flag("-w,--wide", wide, "every column, nothing truncated (default: fit the terminal, 80 columns without one)");
  app.add_flag("-q,--quiet", ids_only, "print the run-ids only, one per line");
  if (auto rc = parse(app, args)) return *rc;
  if (format != "table" && format != "json") {
    error("ps: --format '" + format + "' is not table or json");
    return kExitBatmanError;
  }
  if (as_json) format = "json";
  if (!project.empty()) {
    if (auto v = validate_name(project, "project"); !v) {
      error(v.error().message);
      return kExitBatmanError;
    }
  }
  auto runs = load_runs(project.empty() ? std::nullopt : std::optional<std::string>(project));
  std::erase_if(runs, [&](const runner::RunState& s) { return !all && !s.live_status(); });

  if (ids_only) {
    for (const auto& s : runs) std::cout << s.run_id << "\n";
    return 0;
  }
  if (format == "json") {
    auto out = nlohmann::json::array();
    for (const auto& s : runs) out.push_back(nlohmann::json::parse(runner::to_json(s)));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  auto now = std::chrono::system_clock::now();
  const bool colour = colour_on(1);
  Table table = wide ? Table({"PROJECT", "RUN-ID", "KIND", "TIER", "PID", "STATUS", "STARTED", "DURATION", "EXIT", "COMMAND"})
                     : Table({"PROJECT", "RUN-ID", "STATUS", "PID", "DURATION", "EXIT", "COMMAND"});
  for (const auto& s : runs) {
    auto started = parse_rfc3339(s.started_at);
    auto ended = s.ended_at ? parse_rfc3339(*s.ended_at) : std::nullopt;
    std::string duration = started ? format_duration((ended ? *ended : now) - *started) : "-";
    std::string started_text = s.started_at.size() >= 19 ? s.started_at.substr(0, 19) + "Z" : s.started_at;
    std::string exit_text = s.signal ? "SIG" + std::to_string(*s.signal)
                                     : (s.exit_code ? std::to_string(*s.exit_code) : "-");
    // A batch task on a Slurm cluster runs on a node: its job stands where a pid would.
    const std::string pid_text = s.slurm_job ? "slurm:" + *s.slurm_job : std::to_string(s.pid);
    std::string command = s.command;
    for (auto& c : command)
      if (c == '\n' || c == '\t') c = ' ';
    // What a state file says is shown as text: no escape sequence reaches the terminal.
    command = printable(command);
    if (wide)
      table.add({printable(s.project), printable(s.run_id), printable(s.kind), printable(s.isolation.tier),
                 printable(pid_text), status_cell(s.status, colour), printable(started_text), duration, exit_text, command});
    else
      table.add({printable(s.project), printable(s.run_id), status_cell(s.status, colour), printable(pid_text), duration,
                 exit_text, command});
  }
  // Narrow: the last column (COMMAND) takes what is left, PROJECT gives way first.
  const std::size_t width = wide ? 0 : output_width();
  std::cout << (width ? table.render(width, {0}) : table.render()) << std::flush;
  return 0;
}

}  // namespace batman::cli
