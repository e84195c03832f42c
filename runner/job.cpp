// Job: the state machine's host. pidfd tells us of an exit, the loop's timers carry
// starttime/backoff/stoptime, the backend spawns and signals, pipes carry the output.
#include "runner/job.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>

namespace batman::runner {

Job::Job(EventLoop& loop, std::unique_ptr<isolation::Backend> backend,
         isolation::LaunchRequest request, RestartRules rules, Listener* listener,
         std::vector<Sink*> stdout_sinks, std::vector<Sink*> stderr_sinks, int stdin_fd)
    : loop_(loop),
      backend_(std::move(backend)),
      request_(std::move(request)),
      listener_(listener),
      process_(*this, std::move(rules)),
      stdout_sinks_(std::move(stdout_sinks)),
      stderr_sinks_(std::move(stderr_sinks)),
      stdin_fd_(stdin_fd) {
  if (stdin_fd_ < 0) {
    devnull_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    stdin_fd_ = devnull_.get();
  }
  set_sinks(stdout_sinks_, stderr_sinks_);
}

Job::~Job() {
  if (timer_) loop_.cancel_timer(*timer_);
  if (release_timer_) loop_.cancel_timer(*release_timer_);
  if (child_) {
    // A forgotten child is killed and reaped here, never left behind.
    unwatch_child();
    backend_->signal_tree(*child_, SIGKILL);
    ::waitpid(child_->pid, nullptr, 0);
    backend_->kill_leftovers(*child_);
  }
  if (!released_) backend_->release();
}

void Job::set_sinks(std::vector<Sink*> stdout_sinks, std::vector<Sink*> stderr_sinks) {
  stdout_sinks_ = std::move(stdout_sinks);
  stderr_sinks_ = std::move(stderr_sinks);
  // Drain what the old pumps hold into the old sinks, then start fresh pipes.
  if (stdout_pump_) stdout_pump_->drain();
  if (stderr_pump_) stderr_pump_->drain();
  stdout_pump_.reset();
  stderr_pump_.reset();
  stdout_write_.reset();
  stderr_write_.reset();
  if (!stdout_sinks_.empty()) {
    if (auto p = make_pipe()) {
      stdout_write_ = std::move(p->write_end);
      stdout_pump_ = std::make_unique<OutputPump>(loop_, std::move(p->read_end), stdout_sinks_);
    }
  }
  if (!stderr_sinks_.empty()) {
    if (auto p = make_pipe()) {
      stderr_write_ = std::move(p->write_end);
      stderr_pump_ = std::make_unique<OutputPump>(loop_, std::move(p->read_end), stderr_sinks_);
    }
  }
}

Result<std::vector<std::string>> Job::prepare() { return backend_->prepare(request_); }

TimePoint Job::now() const { return loop_.now(); }

Result<pid_t> Job::spawn() {
  request_.stdin_fd = stdin_fd_;
  request_.stdout_fd = stdout_write_ ? stdout_write_.get() : stdout_direct_;
  request_.stderr_fd = stderr_write_ ? stderr_write_.get() : stderr_direct_;
  if (terminal_fd_ >= 0) request_.stdin_fd = request_.stdout_fd = request_.stderr_fd = terminal_fd_;
  if (listener_) {
    if (auto ready = listener_->prepare_start(*this); !ready) {
      spawn_error_ = ready.error();
      return std::unexpected(ready.error());
    }
  }
  auto child = backend_->spawn(request_);
  if (!child) {
    spawn_error_ = child.error();
    return std::unexpected(child.error());
  }
  spawn_error_.reset();
  child_ = std::move(*child);
  pid_t pid = child_->pid;
  auto w = child_->status_fd ? loop_.watch(child_->status_fd.get(), EPOLLIN, [this](std::uint32_t) { on_status_report(); })
                             : loop_.watch_exit(child_->pidfd.get(), [this] { on_child_exit(); });
  if (w && child_->report_fd)
    w = loop_.watch(child_->report_fd.get(), EPOLLIN, [this](std::uint32_t) { take_report(); });
  if (!w) {
    unwatch_child();
    backend_->signal_tree(*child_, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    child_.reset();
    return std::unexpected(w.error());
  }
  start_failed_ = false;
  if (listener_) listener_->on_starting(*this, pid);
  // A backend that reports later (namespaces) confirms the start from the loop.
  if (!child_->report_fd && listener_) listener_->on_spawned(*this, pid);
  return pid;
}

void Job::unwatch_child() {
  loop_.unwatch(child_->pidfd.get());
  if (child_->status_fd) loop_.unwatch(child_->status_fd.get());
  if (child_->report_fd) loop_.unwatch(child_->report_fd.get());
}

void Job::take_report() {
  if (!child_ || !child_->report_fd) return;
  loop_.unwatch(child_->report_fd.get());
  auto failed = backend_->read_report(*child_);
  child_->report_fd.reset();
  if (failed) {
    // The child exits 125 next; its exit is then a failed start, not the job's exit.
    spawn_error_ = std::move(*failed);
    start_failed_ = true;
    return;
  }
  if (listener_) listener_->on_spawned(*this, child_->pid);
}

void Job::end_attempt(int status) {
  if (start_failed_) {
    process_.on_start_failed(spawn_error_ ? spawn_error_->message : "the child died during setup");
  } else {
    process_.on_exit(status);
  }
}

void Job::on_child_exit() {
  if (!child_) return;
  // Its writers are gone with the child: the report, if still unread, is there in full.
  take_report();
  // What the attempt left behind dies with it: grandchildren are part of the job. Done
  // before reaping, while the exited leader still holds its pid (and session id).
  backend_->kill_leftovers(*child_);
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(child_->pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  child_.reset();
  end_attempt(status);
}

void Job::on_status_report() {
  if (!child_) return;
  take_report();
  int status = 0;
  ssize_t n;
  do {
    n = ::read(child_->status_fd.get(), &status, sizeof status);
  } while (n < 0 && errno == EINTR);
  loop_.unwatch(child_->status_fd.get());
  child_->status_fd.reset();
  if (n != static_cast<ssize_t>(sizeof status)) {
    // PID 1 died without a report (killed from outside): its own exit tells.
    if (auto w = loop_.watch_exit(child_->pidfd.get(), [this] { on_child_exit(); }); !w) on_child_exit();
    return;
  }
  backend_->kill_leftovers(*child_);
  // PID 1 has killed and reaped the rest and is on its way out; the kernel takes its
  // namespaces down behind it. It is reaped when its pidfd says so, while we go on.
  auto pidfd = std::make_shared<UniqueFd>(std::move(child_->pidfd));
  const pid_t pid = child_->pid;
  if (auto w = loop_.watch_exit(pidfd->get(), [pidfd, pid] { ::waitpid(pid, nullptr, WNOHANG); }); !w)
    ::waitpid(pid, nullptr, 0);
  child_.reset();
  end_attempt(status);
}

void Job::signal_tree(int sig) {
  if (child_) backend_->signal_tree(*child_, sig);
}

void Job::set_timer(std::optional<TimePoint> deadline) {
  if (timer_) {
    loop_.cancel_timer(*timer_);
    timer_.reset();
  }
  if (deadline) {
    timer_ = loop_.add_timer(*deadline, [this] {
      timer_.reset();
      process_.on_timer();
    });
  }
}

void Job::on_transition(ProcState from, ProcState to, const std::string& why) {
  if (listener_) listener_->on_transition(*this, from, to, why);
}

void Job::finish() {
  if (stdout_pump_) stdout_pump_->drain();
  if (stderr_pump_) stderr_pump_->drain();
  for (Sink* s : stdout_sinks_) s->flush();
  for (Sink* s : stderr_sinks_) s->flush();
  try_release_later();
}

void Job::try_release_later() {
  if (released_ || release_timer_) return;
  released_ = backend_->try_release();
  if (released_) return;
  release_timer_ = loop_.add_timer_after(release_wait_, [this] {
    release_timer_.reset();
    try_release_later();
  });
  release_wait_ = std::min<Duration>(release_wait_ * 2, std::chrono::seconds(1));
}

}  // namespace batman::runner
