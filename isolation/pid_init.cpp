// PID 1 of the job's pid namespace: it reaps every orphan, forwards the signals batman sends
// to all processes of the namespace, and exits with the job's status when the job exits (the
// kernel then kills whatever is left in the namespace). System calls only.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "isolation/ns_plan.hpp"

namespace batman::isolation::ns {

[[noreturn]] void run_init(pid_t job) {
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
        // A job killed by signal N becomes 128+N: PID 1 cannot kill itself with a signal.
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      }
      continue;
    }
    // kill(-1) from PID 1 reaches every other process of the namespace.
    kill(-1, sig);
  }
}

}  // namespace batman::isolation::ns
