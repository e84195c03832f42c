// batman's entry point: dispatch on argv[0] (batman-parallel, batman-isolated, batman-multi,
// taskmaster) or on the first argument (batman SUBCOMMAND ...). Built twice (src/meson.build):
// `batman` (BATMAN_LAUNCHER) runs jobs itself (parallel, isolated, multi) and execs every other
// command in libexec/batman/batman-services, which is built with all of them.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "batman_config.h"
#include "common/signals.hpp"
#include "common/executables.hpp"
#include "common/unique_fd.hpp"
#include "src/cli/arguments.hpp"
#include "src/cli/cli.hpp"
#ifdef BATMAN_LAUNCHER
#include "src/cli/control_client.hpp"
#else
#include "src/batch/slurm_executor.hpp"
#include "src/dashboard/dashboard.hpp"
#endif

namespace {

#ifndef BATMAN_LAUNCHER
void usage(std::ostream& out) {
  out << "usage: batman COMMAND [ARGS...]\n\n"
         "Run jobs side by side, each in its own project tree and isolation tier.\n\n"
         "commands:\n"
         "  parallel PROJECT COMMAND   run COMMAND in PROJECT's tree (also: batman-parallel);\n"
         "                             COMMAND is one shell string or several words (make -j4)\n"
         "  isolated COMMAND           run COMMAND with the strongest isolation (batman-isolated)\n"
         "  multi ID COMMAND           run one live instance of ID (batman-multi)\n"
         "  ps                         list runs\n"
         "  logs PROJECT [RUN-ID]      show a run's log\n"
         "  stop PROJECT [RUN-ID]      stop runs\n"
         "  clean [PROJECT|--all]      remove finished runs\n"
         "  doctor                     what this machine can isolate, and why\n"
         "  profiles list|show NAME    isolation profiles\n"
         "  supervise CONFIG           the Taskmaster supervisor (also: taskmaster)\n"
         "  ctl [COMMAND...]           control a running supervisor\n"
         "  batch FILE|- [TASK...]     run many tasks with limits, retries and reports\n"
         "  dashboard                  a live web page of every project, run, program and task\n"
         "  help [COMMAND]             this list, or COMMAND's options\n"
         "  version, --version        the version, libseccomp, kernel and tiers (-V: the version)\n\n"
         "'batman help COMMAND' (or 'batman COMMAND --help') shows each command's options.\n";
}

const std::vector<std::string> kCommands = {"parallel", "isolated", "multi", "ps",        "logs", "stop",  "clean",
                                            "doctor",   "profiles", "supervise", "ctl", "batch", "dashboard", "version", "help"};

int unknown_command(const std::string& command) {
  using namespace batman::cli;
  if (auto near = closest_match(command, kCommands))
    error("unknown command '" + command + "': did you mean '" + *near + "'? (run 'batman help' for the list)");
  else
    error("unknown command '" + command + "': run 'batman help' for the list");
  return kExitBatmanError;
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
  // The slurm executor's task wrapper, run by its job script on a node (not for users).
  if (command == "__slurm-task") return batman::slurm::command_slurm_task(args);
  if (command == "dashboard") return batman::dashboard::command_dashboard(args);
  if (command == "__complete") return command_complete(args);  // completions/: hidden
  // -V: the one line scripts compare (every executable and subcommand prints the same);
  // --version and `version`: what a bug report needs too (libseccomp, kernel, tiers).
  if (command == "-V") {
    std::cout << batman::cli::version_text() << "\n";
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::cout << batman::cli::version_report() << "\n";
    return 0;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    // `batman help SUBCOMMAND`: that subcommand's own --help.
    if (!args.empty() && args.front() != "help" && args.front().rfind('-', 0) != 0) {
      if (std::find(kCommands.begin(), kCommands.end(), args.front()) == kCommands.end())
        return unknown_command(args.front());
      if (args.front() == "version") return dispatch("version", {});
      return dispatch(args.front(), {"--help"});
    }
    usage(std::cout);
    return 0;
  }
  return unknown_command(command);
}
#endif

#ifdef BATMAN_LAUNCHER
// Exec batman-services with the same argv (argv[0] too: `taskmaster` dispatches on it): beside
// this executable (a build tree), in libexecdir/batman/ of the install this one is in (found
// from bindir, so a moved install works), in the libexecdir it was built for, or in its
// source build's tree. A file no more writable by others than this one, of root's or this
// user's or this one's owner; the file checked is the file run (execveat), no symlink last.
// Back only on failure.
int exec_services(char** argv) {
  std::vector<std::string> candidates;
  const std::string self = batman::self_executable();
  struct stat me{};
  if (self.empty() || ::stat(self.c_str(), &me) != 0) me.st_mode = 0;
  if (!self.empty()) {
    const std::string dir = self.substr(0, self.rfind('/') + 1);
    candidates.push_back(dir + "batman-services");
    if (*BATMAN_LIBEXEC_FROM_BINDIR) candidates.push_back(dir + BATMAN_LIBEXEC_FROM_BINDIR "/batman-services");
  }
  candidates.emplace_back(BATMAN_LIBEXECDIR "/batman-services");
  if (*BATMAN_BUILD_SERVICES) candidates.emplace_back(BATMAN_BUILD_SERVICES);
  std::string passed;
  for (const auto& path : candidates) {
    batman::UniqueFd fd(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    struct stat st{};
    const char* why = nullptr;
    if (!fd || ::fstat(fd.get(), &st) != 0)
      why = "missing";
    else if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR))
      why = "not an executable file";
    else if ((st.st_uid != 0 && st.st_uid != ::geteuid() && st.st_uid != me.st_uid) ||
             (st.st_mode & ~me.st_mode & (S_IWGRP | S_IWOTH)))
      why = "another user could change it";
    if (!why) {
      ::syscall(SYS_execveat, fd.get(), "", argv, environ, AT_EMPTY_PATH);
      why = std::strerror(errno);
    }
    passed += (passed.empty() ? "" : ", ") + path + " (" + why + ")";
  }
  batman::cli::error("cannot run batman-services, which runs every command but parallel, isolated and multi: " +
                     passed + "; reinstall batman");
  return batman::cli::kExitBatmanError;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  // Were 0, 1 or 2 closed when batman started, its first directory or pipe would take that
  // number, and a job would inherit it as its stdin, stdout or stderr (a directory of
  // $BATMAN_HOME, writable through /proc/self/fd/0/...): each closed one is /dev/null first.
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    if (::open("/dev/null", O_RDWR) != fd) {  // the lowest free number: fd
      const char msg[] = "batman: fd 0, 1 or 2 is closed and /dev/null cannot be opened in its place\n";
      [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
      return 125;
    }
  }
  // SIGCHLD ignored by whoever started us (a nohup-style wrapper, a Python with SIG_IGN) would
  // have the kernel reap our children unseen: a job's exit status lost (the env tier saw exit
  // 0), and batman-init, which inherits it, never hearing of the job's end (a hang).
  ::signal(SIGCHLD, SIG_DFL);
  // `batman stop PROJECT TASK` asks a batch to stop one task with this signal. Every other
  // batman ignores it, so that a request sent to the wrong process (on the word of a forged
  // state file) harms nothing; a batch blocks it and reads it from its signalfd (a blocked
  // signal is queued even when ignored). Ignored before the launcher's own `ctl` and its exec
  // of batman-services (which keeps it ignored). Jobs start with every signal at its default.
  ::signal(batman::task_stop_signal(), SIG_IGN);
  std::string self = argc > 0 ? argv[0] : "batman";
  if (auto slash = self.rfind('/'); slash != std::string::npos) self = self.substr(slash + 1);
  std::vector<std::string> args(argv + 1, argv + argc);
#ifndef BATMAN_LAUNCHER
  // Exec'd by `batman`: shown under the name the user ran (taskmaster, batman) in ps, pgrep and
  // systemctl, as before the split, not as batman-services.
  if (self != "batman-services") ::prctl(PR_SET_NAME, self.c_str(), 0, 0, 0);
#else
  // `batman` runs jobs (parallel, isolated, multi, and the links of their names) itself, and
  // execs batman-services for every other command: a launch maps no code but its own.
  if (self != "batman-parallel" && self != "batman-isolated" && self != "batman-multi" &&
      (args.empty() || (args[0] != "parallel" && args[0] != "isolated" && args[0] != "multi"))) {
    // `batman ctl [--socket P | --config C] COMMAND...` to a supervisor that answers is run
    // here: batman-services would start twice the binary for the same few calls.
    if (self != "taskmaster" && !args.empty() && args[0] == "ctl") {
      try {
        if (auto code = batman::cli::ctl_direct({args.begin() + 1, args.end()})) return *code;
      } catch (const std::exception& e) {
        batman::cli::error(std::string("internal error: ") + e.what());
        return batman::cli::kExitBatmanError;
      }
    }
    return exec_services(argv);
  }
#endif
  try {
    if (self == "batman-parallel") return batman::cli::run_job("parallel", args);
    if (self == "batman-isolated") return batman::cli::run_job("isolated", args);
    if (self == "batman-multi") return batman::cli::run_job("multi", args);
#ifdef BATMAN_LAUNCHER
    const std::string kind = args.front();
    args.erase(args.begin());
    return batman::cli::run_job(kind, args);
#else
    if (self == "taskmaster") return batman::cli::command_supervise(args);
    if (args.empty()) {
      usage(std::cerr);
      return batman::cli::kExitBatmanError;
    }
    std::string command = args.front();
    args.erase(args.begin());
    return dispatch(command, args);
#endif
  } catch (const std::exception& e) {
    batman::cli::error(std::string("internal error: ") + e.what());
    return batman::cli::kExitBatmanError;
  }
}
