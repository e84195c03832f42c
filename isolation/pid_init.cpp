// PID 1 of the job's pid namespace: it reaps every orphan, forwards the signals batman sends
// to all processes of the namespace, and when the job exits it kills and reaps what is left,
// reports the job's wait status to batman through a pipe, and exits. System calls only.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "isolation/pid_init.hpp"

namespace batman::isolation::ns {

[[noreturn]] void run_init(pid_t job, int status_fd) {
  // Every signal is already blocked (before the job was forked, so none is lost); init takes
  // them one by one. Signals from outside reach PID 1 only when blocked or handled.
  sigset_t all;
  sigfillset(&all);
  for (;;) {
    siginfo_t info;
    const int sig = sigwaitinfo(&all, &info);
    if (sig < 0) continue;  // EINTR
    if (sig == SIGCHLD) {
      int status = 0;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid != job) continue;
        // The job is gone: so is the rest of the namespace, before batman hears of it, so
        // that the report means "nothing of the job is left".
        kill(-1, SIGKILL);
        while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
        }
        // The raw status keeps "killed by signal N" (PID 1 cannot die of a signal itself).
        if (status_fd >= 0) {
          [[maybe_unused]] auto n = write(status_fd, &status, sizeof status);
        }
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      }
      continue;
    }
    // kill(-1) from PID 1 reaches every other process of the namespace.
    kill(-1, sig);
  }
}

}  // namespace batman::isolation::ns
