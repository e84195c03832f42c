// `batman ps [--all] [--project P] [--json]`: runs across every project.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/duration.hpp"
#include "common/names.hpp"
#include "common/time_format.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/runs.hpp"

namespace batman::cli {

int command_ps(const std::vector<std::string>& args) {
  bool all = false, as_json = false;
  std::string project;
  CLI::App app{"List running runs across every project (finished ones too with --all).", "batman ps"};
  app.add_flag("-a,--all", all, "include finished runs");
  app.add_option("-p,--project", project, "only this project");
  app.add_flag("--json", as_json, "print JSON");
  if (auto rc = parse(app, args)) return *rc;
  if (!project.empty()) {
    if (auto v = validate_name(project, "project"); !v) {
      error(v.error().message);
      return kExitBatmanError;
    }
  }
  auto runs = load_runs(project.empty() ? std::nullopt : std::optional<std::string>(project));
  std::erase_if(runs, [&](const runner::RunState& s) { return !all && !s.live_status(); });

  if (as_json) {
    auto out = nlohmann::json::array();
    for (const auto& s : runs) out.push_back(nlohmann::json::parse(runner::to_json(s)));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  auto now = std::chrono::system_clock::now();
  std::printf("%-16s %-22s %-8s %-10s %-8s %-9s %-20s %-9s %-5s %s\n", "PROJECT", "RUN-ID", "KIND", "TIER",
              "PID", "STATUS", "STARTED", "DURATION", "EXIT", "COMMAND");
  for (const auto& s : runs) {
    auto started = parse_rfc3339(s.started_at);
    auto ended = s.ended_at ? parse_rfc3339(*s.ended_at) : std::nullopt;
    std::string duration = started ? format_duration((ended ? *ended : now) - *started) : "-";
    std::string started_text = s.started_at.size() >= 19 ? s.started_at.substr(0, 19) + "Z" : s.started_at;
    std::string exit_text = s.signal ? "SIG" + std::to_string(*s.signal)
                                     : (s.exit_code ? std::to_string(*s.exit_code) : "-");
    std::string command = s.command;
    for (auto& c : command)
      if (c == '\n' || c == '\t') c = ' ';
    // What a state file says is shown as text: no escape sequence reaches the terminal.
    command = printable(command);
    if (command.size() > 60) command = command.substr(0, 57) + "...";
    std::printf("%-16s %-22s %-8s %-10s %-8d %-9s %-20s %-9s %-5s %s\n", s.project.c_str(), s.run_id.c_str(),
                printable(s.kind).c_str(), printable(s.isolation.tier).c_str(), s.pid, printable(s.status).c_str(),
                printable(started_text).c_str(), duration.c_str(), exit_text.c_str(), command.c_str());
  }
  return 0;
}

}  // namespace batman::cli
