// batman's entry point: dispatch on argv[0] (batman-parallel, batman-isolated, batman-multi,
// taskmaster) or on the first argument (batman SUBCOMMAND ...).
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "batman_config.h"
#include "src/cli/cli.hpp"

namespace {

void usage(std::ostream& out) {
  out << "usage: batman COMMAND [ARGS...]\n\n"
         "Run jobs side by side, each in its own project tree and isolation tier.\n\n"
         "commands:\n"
         "  parallel PROJECT COMMAND   run COMMAND in PROJECT's tree (also: batman-parallel)\n"
         "  isolated COMMAND           run COMMAND with the strongest isolation (batman-isolated)\n"
         "  multi ID COMMAND           run one live instance of ID (batman-multi)\n"
         "  ps                         list runs\n"
         "  logs PROJECT [RUN-ID]      show a run's log\n"
         "  stop PROJECT [RUN-ID]      stop runs\n"
         "  clean [PROJECT]            remove finished runs\n"
         "  doctor                     what this machine can isolate, and why\n"
         "  profiles list|show NAME    isolation profiles\n"
         "  supervise CONFIG           the Taskmaster supervisor (also: taskmaster)\n"
         "  ctl [COMMAND...]           control a running supervisor\n"
         "  batch FILE|- [TASK...]     run many tasks with limits, retries and reports\n"
         "  version                    print the version\n\n"
         "'batman COMMAND --help' shows each command's options.\n";
}

int dispatch(const std::string& command, const std::vector<std::string>& args) {
  using namespace batman::cli;
  if (command == "parallel" || command == "isolated" || command == "multi") return run_job(command, args);
  if (command == "ps") return command_ps(args);
  if (command == "logs") return command_logs(args);
  if (command == "stop") return command_stop(args);
  if (command == "clean") return command_clean(args);
  if (command == "doctor") return command_doctor(args);
  if (command == "profiles") return command_profiles(args);
  if (command == "supervise") return command_supervise(args);
  if (command == "ctl") return command_ctl(args);
  if (command == "batch") return command_batch(args);
  if (command == "version" || command == "--version") {
    std::cout << "batman " << BATMAN_VERSION << "\n";
    return 0;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    usage(std::cout);
    return 0;
  }
  error("unknown command '" + command + "': run 'batman help' for the list");
  return kExitBatmanError;
}

}  // namespace

int main(int argc, char** argv) {
  std::string self = argc > 0 ? argv[0] : "batman";
  if (auto slash = self.rfind('/'); slash != std::string::npos) self = self.substr(slash + 1);
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (self == "batman-parallel") return batman::cli::run_job("parallel", args);
    if (self == "batman-isolated") return batman::cli::run_job("isolated", args);
    if (self == "batman-multi") return batman::cli::run_job("multi", args);
    if (self == "taskmaster") return batman::cli::command_supervise(args);
    if (args.empty()) {
      usage(std::cerr);
      return batman::cli::kExitBatmanError;
    }
    std::string command = args.front();
    args.erase(args.begin());
    return dispatch(command, args);
  } catch (const std::exception& e) {
    batman::cli::error(std::string("internal error: ") + e.what());
    return batman::cli::kExitBatmanError;
  }
}
