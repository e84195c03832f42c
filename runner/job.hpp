// Job: a SupervisedProcess wired to the real world: the event loop (pidfd, timerfd), an
// isolation Backend that spawns and signals the tree, and output pipes pumped to sinks.
// Used by `batman parallel/isolated/multi`, by the supervisor (one per program instance)
// and by the batch scheduler (one per task).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "isolation/backend.hpp"
#include "runner/event_loop.hpp"
#include "runner/output.hpp"
#include "runner/process.hpp"

namespace batman::runner {

class Job final : public ProcessHost {
 public:
  struct Listener {
    virtual ~Listener() = default;
    virtual void on_transition(Job&, ProcState from, ProcState to, const std::string& why) = 0;
    // The attempt's process exists and may still be setting up (it may yet fail to start:
    // then start_failed() and spawn_error() say so and on_spawned does not follow).
    virtual void on_starting(Job&, pid_t) {}
    // Last preparation before the job may start (the run's log file and TMPDIR), just before
    // the spawn. An error aborts the attempt as a failed start.
    virtual Result<void> prepare_start(Job&) { return {}; }
    virtual void on_spawned(Job&, pid_t) {}
  };

  // `stdout_sinks`/`stderr_sinks` receive the job's output (may be empty: discarded).
  // stdin_fd: the job's stdin (not owned; -1 = /dev/null).
  Job(EventLoop& loop, std::unique_ptr<isolation::Backend> backend,
      isolation::LaunchRequest request, RestartRules rules, Listener* listener,
      std::vector<Sink*> stdout_sinks, std::vector<Sink*> stderr_sinks, int stdin_fd = -1);
  ~Job() override;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  // Backend preparation (cgroups...). Returns what could not be enforced.
  Result<std::vector<std::string>> prepare();
  SupervisedProcess& process() { return process_; }
  const SupervisedProcess& process() const { return process_; }
  isolation::Backend& backend() { return *backend_; }
  const isolation::LaunchRequest& request() const { return request_; }
  // The last error from spawning (shown in BACKOFF/FATAL details and by the CLI).
  const std::optional<Error>& spawn_error() const { return spawn_error_; }
  // The last attempt's process was created but never reached execve (spawn_error says why).
  bool start_failed() const { return start_failed_; }
  // Read the pipes dry and release the backend's resources (retried from the loop while its
  // cgroup empties; the destructor waits, bounded, for what is left). Call once it settled.
  void finish();
  void set_sinks(std::vector<Sink*> stdout_sinks, std::vector<Sink*> stderr_sinks);
  // A stream with no sinks goes straight to `fd` (not owned, kept open by the caller for
  // every attempt; -1: /dev/null): the job writes its own log file, as `cmd >> file` does,
  // and batman moves none of its bytes.
  void set_output_fds(int stdout_fd, int stderr_fd) {
    stdout_direct_ = stdout_fd;
    stderr_direct_ = stderr_fd;
  }
  // The job's stdin, stdout and stderr are all `fd` (a pseudo-terminal's slave side, not
  // owned, kept open by the caller for every attempt), instead of pipes (`--tty`).
  void use_terminal(int fd) { terminal_fd_ = fd; }

  // ProcessHost
  TimePoint now() const override;
  Result<pid_t> spawn() override;
  void signal_tree(int sig) override;
  void set_timer(std::optional<TimePoint> deadline) override;
  void on_transition(ProcState from, ProcState to, const std::string& why) override;

 private:
  void on_child_exit();
  void on_status_report();
  void take_report();
  void unwatch_child();  // every fd of child_ the loop may watch
  void end_attempt(int wait_status);
  // Release the backend's per-run resources without waiting on the loop: a cgroup that is
  // not empty yet is tried again from a timer, 2 ms, then doubling up to 1 s.
  void try_release_later();
  EventLoop& loop_;
  std::unique_ptr<isolation::Backend> backend_;
  isolation::LaunchRequest request_;
  Listener* listener_;
  SupervisedProcess process_;
  std::vector<Sink*> stdout_sinks_, stderr_sinks_;
  std::unique_ptr<OutputPump> stdout_pump_, stderr_pump_;
  UniqueFd stdout_write_, stderr_write_;
  UniqueFd devnull_;
  int stdin_fd_;
  int terminal_fd_ = -1;
  int stdout_direct_ = -1, stderr_direct_ = -1;
  std::optional<isolation::Child> child_;
  std::optional<EventLoop::TimerId> timer_;
  std::optional<Error> spawn_error_;
  bool start_failed_ = false;
  bool released_ = false;
  std::optional<EventLoop::TimerId> release_timer_;
  Duration release_wait_ = std::chrono::milliseconds(2);
};

}  // namespace batman::runner
