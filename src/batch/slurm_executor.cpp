// The slurm executor: sbatch submissions grouped into arrays at the end of a loop turn, one
// scancel per turn, results read from the files the wrapper renames into results/ (inotify),
// and a squeue poll, at most once a second and slower while nothing changes, for what
// inotify cannot see (a shared file system written from another host, a job that died).
#include "src/batch/slurm_executor.hpp"
#include "src/cli/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "common/duration.hpp"
#include "common/fs.hpp"

extern char** environ;

namespace batman::slurm {
namespace {

using nlohmann::json;

// How long one sbatch, squeue or scancel call may take before batman gives up on it.
constexpr Duration kToolTimeout = std::chrono::seconds(60);
// The squeue poll's slowest pace while nothing changes.
constexpr Duration kSlowestPoll = std::chrono::seconds(5);
// Polls in a row that must miss a job, with no result file, before it counts as lost: a
// result written on another host may take a moment to show on a shared file system.
constexpr int kMissingPolls = 3;

struct ToolOutput {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
  bool timed_out = false;
};

// Run a Slurm client to its end (at most `timeout`, then SIGKILL), stdin /dev/null, without a
// shell. Its signal mask and dispositions are the defaults, not batman's blocked set.
Result<ToolOutput> run_tool(const std::vector<std::string>& argv, Duration timeout = kToolTimeout) {
  auto child = cli::spawn_piped(argv);
  if (!child) return sys_error("run " + argv[0] + " (is Slurm's client installed and in PATH?)", child.error().code);
  const pid_t pid = child->pid;
  UniqueFd read_end = std::move(child->output);
  ToolOutput result;
  const auto deadline = SteadyClock::now() + timeout;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n > 0) {
      if (result.out.size() < (1 << 20)) result.out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.timed_out = timed_out;
  if (timed_out) result.out = argv[0] + " did not answer within " + format_duration(timeout);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string first_lines(const std::string& text, std::size_t lines = 5) {
  std::size_t at = 0;
  for (std::size_t i = 0; i < lines && at != std::string::npos; ++i) {
    at = text.find('\n', at);
    if (at != std::string::npos) ++at;
  }
  std::string out = text.substr(0, at == std::string::npos ? text.size() : at);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  for (auto& c : out)
    if (c == '\n') c = ' ';
  return out;
}

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::string random_token() {
  std::random_device device;
  std::string out;
  for (int i = 0; i < 4; ++i) {
    char part[9];
    std::snprintf(part, sizeof part, "%08x", device());
    out += part;
  }
  return out;
}

}  // namespace

Executor::Executor(runner::EventLoop& loop, Listener& listener, ExecutorConfig config)
    : loop_(loop), listener_(listener), config_(std::move(config)) {}

Executor::~Executor() {
  if (flush_id_) loop_.cancel_deferred(*flush_id_);
  if (cancel_id_) loop_.cancel_deferred(*cancel_id_);
  if (poll_timer_) loop_.cancel_timer(*poll_timer_);
  if (inotify_) loop_.unwatch(inotify_.get());
}

Result<std::unique_ptr<Executor>> Executor::create(runner::EventLoop& loop, Listener& listener, ExecutorConfig config) {
  std::unique_ptr<Executor> e(new Executor(loop, listener, std::move(config)));
  auto project = open_dir_path(e->config_.project_dir, false);
  if (!project) return std::unexpected(project.error());
  auto top = open_dir_at(project->get(), "slurm", true);
  if (!top) return std::unexpected(top.error().wrap("create " + e->config_.project_dir + "/slurm"));
  e->dir_ = e->config_.project_dir + "/slurm/" + e->config_.run_id;
  auto dir = open_dir_at(top->get(), e->config_.run_id, true);
  if (!dir) return std::unexpected(dir.error().wrap("create " + e->dir_));
  e->dir_fd_ = std::move(*dir);
  auto results = open_dir_at(e->dir_fd_.get(), "results", true);
  if (!results) return std::unexpected(results.error().wrap("create " + e->dir_ + "/results"));
  e->results_fd_ = std::move(*results);
  // The job script: the node runs the same batman, at the same path, as the wrapper.
  const std::string script =
      "#!/bin/sh\n"
      "# batman batch --executor slurm: one attempt through batman's task wrapper on this node.\n"
      "batman=" + shell_quote(e->config_.batman) + "\n"
      "if [ ! -x \"$batman\" ]; then\n"
      "  echo \"batman: $batman is not installed on node $(hostname) (the slurm executor runs every task through it)\" >&2\n"
      "  exit 127\n"
      "fi\n"
      "exec \"$batman\" __slurm-task \"$@\"\n";
  if (auto w = write_file_atomic(e->dir_fd_.get(), "job.sh", script, 0700); !w)
    return std::unexpected(w.error().wrap("write " + e->dir_ + "/job.sh"));
  e->inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (e->inotify_) {
    const std::string path = e->dir_ + "/results";
    if (::inotify_add_watch(e->inotify_.get(), path.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
      e->inotify_.reset();
    } else {
      Executor* self = e.get();
      if (auto w = loop.watch(e->inotify_.get(), EPOLLIN, [self](std::uint32_t) { self->read_results(); }); !w)
        e->inotify_.reset();
    }
  }
  return e;
}

std::string Executor::job_name() const { return "batman." + config_.project + "." + config_.run_id; }

Result<void> Executor::probe() {
  const std::string token = random_token();
  if (auto w = write_file_atomic(dir_fd_.get(), "probe-token", token + "\n", 0600); !w)
    return std::unexpected(w.error().wrap("write " + dir_ + "/probe-token"));
  Submission s;
  s.job_name = job_name() + ".probe";
  s.timeout = std::chrono::seconds(30);
  s.output = dir_ + "/probe.out";
  s.chdir = dir_;
  s.script = dir_ + "/job.sh";
  s.script_args = {"--probe", dir_ + "/probe-token", dir_ + "/probe-result"};
  auto argv = sbatch_argv(config_.options, s);
  argv.insert(argv.begin() + 2, "--wait");
  ++sbatch_calls_;
  auto ran = run_tool(argv, config_.probe_timeout);
  if (!ran) return fail("slurm: " + ran.error().message);
  if (ran->timed_out) {
    (void)run_tool({"scancel", "--name=" + s.job_name});
    return fail("slurm: the test job that checks the nodes did not end within " +
                format_duration(config_.probe_timeout) + "; is the partition busy or down? (sinfo)");
  }
  const auto id = parse_job_id(ran->out);
  const std::string job = id ? "Slurm job " + *id : "the test job";
  auto result = read_file_at(dir_fd_.get(), "probe-result", 4096);
  if (!result) {
    if (!id) return fail("slurm: sbatch refused the test job: " + first_lines(ran->out) + " (" + join(argv) + ")");
    auto out = read_file_at(dir_fd_.get(), "probe.out", 64 * 1024);
    return fail("slurm: " + job + " did not run batman on its node: " +
                (out && !out->empty() ? first_lines(*out) : "exit " + std::to_string(ran->exit_code)) +
                " (each node needs batman installed at " + config_.batman + " and " + config_.project_dir +
                " on a shared file system)");
  }
  const auto space = result->find(' ');
  if (result->substr(0, space) != token)
    return fail("slurm: " + job + " read another " + dir_ + "/probe-token than this host wrote: " + config_.home +
                " must be on a file system the nodes share");
  std::string host = space == std::string::npos ? "" : result->substr(space + 1);
  while (!host.empty() && host.back() == '\n') host.pop_back();
  listener_.on_executor_log("slurm: " + job + " ran batman on node " + host + " and saw this host's files");
  return {};
}

void Executor::submit(Element element) {
  pending_.push_back(std::move(element));
  if (!flush_id_) flush_id_ = loop_.defer([this] {
    flush_id_.reset();
    flush();
  });
}

void Executor::flush() {
  if (pending_.empty()) return;
  std::vector<Element> batch;
  batch.swap(pending_);
  // Attempts share an array when they share every sbatch option: the --time their timeout
  // gives, and the throttle of their batch. A retry is a job of its own.
  std::vector<std::string> keys;
  for (const auto& e : batch)
    keys.push_back(time_limit(e.timeout) + "%" + std::to_string(e.throttle) +
                   (e.attempt > 1 ? "#retry:" + std::to_string(e.task) : std::string()));
  for (const auto& group : array_groups(keys, config_.max_array)) {
    std::vector<Element> elements;
    for (const auto i : group) elements.push_back(std::move(batch[i]));
    submit_group(elements);
  }
}

void Executor::submit_group(const std::vector<Element>& group) {
  const std::string manifest = "submit-" + std::to_string(submissions_++) + ".json";
  json m;
  m["home"] = config_.home;
  m["project"] = config_.project;
  m["project_dir"] = config_.project_dir;
  m["tier"] = config_.tier;
  m["profile"] = config_.profile;
  m["results"] = dir_ + "/results";
  json& elements = m["elements"] = json::array();
  for (const auto& e : group) {
    json x;
    x["task"] = e.task;
    x["attempt"] = e.attempt;
    x["name"] = e.name;
    x["task_id"] = e.task_id;
    x["command"] = e.command;
    x["cwd"] = e.cwd;
    x["env"] = e.env;
    x["timeout_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(e.timeout).count();
    x["log"] = e.log;
    elements.push_back(std::move(x));
  }
  auto fail_all = [&](const std::string& why) {
    for (const auto& e : group) {
      ElementResult r;
      r.error = why;
      report(e.task, e.attempt, std::move(r));
    }
  };
  if (auto w = write_file_atomic(dir_fd_.get(), manifest, m.dump(1, ' ', false, json::error_handler_t::replace), 0600); !w)
    return fail_all("write " + dir_ + "/" + manifest + ": " + w.error().message);
  Submission s;
  s.job_name = job_name();
  s.elements = group.size();
  s.throttle = group.size() > 1 ? group.front().throttle : 0;
  s.timeout = group.front().timeout;
  s.output = dir_ + (group.size() > 1 ? "/slurm-%A_%a.out" : "/slurm-%j.out");
  s.chdir = dir_;
  s.script = dir_ + "/job.sh";
  s.script_args = {dir_ + "/" + manifest};
  const auto argv = sbatch_argv(config_.options, s);
  ++sbatch_calls_;
  auto ran = run_tool(argv);
  if (!ran) return fail_all("sbatch: " + ran.error().message);
  if (ran->timed_out) return fail_all(ran->out);
  auto id = parse_job_id(ran->out);
  if (ran->exit_code != 0 || !id)
    return fail_all("sbatch refused the job (exit " + std::to_string(ran->exit_code) + "): " + first_lines(ran->out));
  for (std::size_t i = 0; i < group.size(); ++i) {
    const auto& e = group[i];
    InFlight f;
    f.attempt = e.attempt;
    f.job = group.size() > 1 ? *id + "_" + std::to_string(i) : *id;
    inflight_[e.task] = f;
    listener_.on_submitted(e.task, f.job);
  }
  poll_interval_ = std::chrono::seconds(1);
  schedule_poll();
}

void Executor::cancel(std::size_t task) {
  int attempt = 0;
  std::string job;
  if (auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Element& e) { return e.task == task; });
      it != pending_.end()) {
    attempt = it->attempt;
    pending_.erase(it);
  } else if (auto f = inflight_.find(task); f != inflight_.end()) {
    attempt = f->second.attempt;
    job = f->second.job;
    cancels_.push_back(job);
    inflight_.erase(f);
  } else {
    return;
  }
  if (!cancel_id_) cancel_id_ = loop_.defer([this] {
    cancel_id_.reset();
    flush_cancels();
  });
  // Told after this turn: the scheduler is inside its kill() call now.
  loop_.defer([this, task, attempt, job] {
    ElementResult r;
    r.signal = SIGTERM;
    r.job = job;
    if (job.empty()) r.error = "cancelled before it was submitted";
    report(task, attempt, std::move(r));
  });
}

void Executor::flush_cancels() {
  if (cancels_.empty()) return;
  std::vector<std::string> argv = {"scancel"};
  argv.insert(argv.end(), cancels_.begin(), cancels_.end());
  listener_.on_executor_log("slurm: scancel " + join(cancels_));
  cancels_.clear();
  auto ran = run_tool(argv);
  if (!ran || ran->exit_code != 0)
    listener_.on_executor_log("slurm: scancel failed: " + (ran ? first_lines(ran->out) : ran.error().message));
}

void Executor::cancel_all() {
  for (const auto& [task, f] : inflight_) cancels_.push_back(f.job);
  inflight_.clear();
  pending_.clear();
  flush_cancels();
}

void Executor::report(std::size_t task, int attempt, ElementResult result) {
  listener_.on_result(task, attempt, std::move(result));
}

void Executor::read_results() {
  if (inotify_) {
    char buf[4096];
    while (::read(inotify_.get(), buf, sizeof buf) > 0) {
    }
  }
  auto names = list_dir(results_fd_.get());
  if (!names) return;
  for (const auto& name : *names) {
    if (name.starts_with('.') || !name.ends_with(".json")) continue;
    std::size_t task = 0;
    int attempt = 0;
    if (std::sscanf(name.c_str(), "%zu.%d.json", &task, &attempt) != 2) continue;
    auto text = read_file_at(results_fd_.get(), name, 64 * 1024);
    ::unlinkat(results_fd_.get(), name.c_str(), 0);
    auto f = inflight_.find(task);
    if (!text || f == inflight_.end() || f->second.attempt != attempt) continue;  // a cancelled attempt's
    ElementResult r;
    r.job = f->second.job;
    try {
      const auto j = json::parse(*text);
      r.exit_code = j.value("exit_code", -1);
      r.signal = j.value("signal", 0);
      r.timed_out = j.value("timed_out", false);
      r.error = j.value("error", "");
      r.host = j.value("host", "");
      r.tier = j.value("tier", "");
      if (auto t = parse_rfc3339(j.value("started", ""))) r.started = *t;
      if (auto t = parse_rfc3339(j.value("ended", ""))) r.ended = *t;
    } catch (const std::exception& e) {
      r.error = "unreadable result " + dir_ + "/results/" + name + ": " + e.what();
    }
    inflight_.erase(f);
    poll_interval_ = std::chrono::seconds(1);
    report(task, attempt, std::move(r));
  }
}

void Executor::schedule_poll() {
  if (poll_timer_ || inflight_.empty()) return;
  poll_timer_ = loop_.add_timer_after(poll_interval_, [this] {
    poll_timer_.reset();
    poll();
  });
}

void Executor::poll() {
  if (inflight_.empty()) return;
  ++squeue_calls_;
  auto ran = run_tool({"squeue", "-h", "-r", "--name=" + job_name(), "-o", "%i %T"});
  read_results();  // after squeue: a job it no longer lists has written its result by now
  if (!ran || ran->exit_code != 0 || ran->timed_out) {
    listener_.on_executor_log("slurm: squeue failed: " + (ran ? first_lines(ran->out) : ran.error().message));
    poll_interval_ = kSlowestPoll;
    schedule_poll();
    return;
  }
  std::map<std::string, std::string> states;
  for (auto& entry : parse_queue(ran->out)) states[entry.job] = entry.state;
  const bool changed = ran->out != last_queue_;
  last_queue_ = ran->out;
  std::vector<std::pair<std::size_t, InFlight>> lost;
  bool missing = false;  // a job squeue stopped listing, without a result yet: look again soon
  for (auto& [task, f] : inflight_) {
    auto s = states.find(f.job);
    if (s != states.end()) {
      f.missing = 0;
      if (!f.running && (s->second == "RUNNING" || s->second == "COMPLETING")) {
        f.running = true;
        listener_.on_running(task);
      }
    } else if (++f.missing >= kMissingPolls) {
      lost.emplace_back(task, f);
    } else {
      missing = true;
    }
  }
  for (const auto& [task, f] : lost) {
    // A report below may have cancelled another lost one (--halt now): that one is told already.
    if (inflight_.erase(task) == 0) continue;
    ElementResult r;
    r.job = f.job;
    std::string why = "Slurm job " + f.job + " left the queue without a result";
    // sacct answers only where accounting is stored (slurmdbd): asked once, at the first lost job.
    if (!sacct_) {
      auto probe = run_tool({"sacct", "-n", "-X", "-j", "1", "-o", "JobID"}, std::chrono::seconds(10));
      sacct_ = probe && probe->exit_code == 0 && !probe->timed_out;
    }
    if (*sacct_) {
      if (auto acct = run_tool({"sacct", "-n", "-X", "-P", "-j", f.job, "-o", "State,ExitCode"}); acct && acct->exit_code == 0)
        why += " (sacct: " + first_lines(acct->out, 1) + ")";
    }
    // Slurm's own output of the job script (--output slurm-%j.out, arrays slurm-%A_%a.out).
    const std::string out_name = "slurm-" + f.job + ".out";
    if (auto out = read_file_at(dir_fd_.get(), out_name, 64 * 1024); out && !out->empty())
      why += ": " + first_lines(*out, 3);
    else
      why += " (no output in " + dir_ + "/" + out_name + ")";
    r.error = why;
    report(task, f.attempt, std::move(r));
  }
  poll_interval_ = changed || missing ? Duration(std::chrono::seconds(1))
                                      : std::min<Duration>(poll_interval_ * 2, kSlowestPoll);
  schedule_poll();
}

void Executor::remove_directory() {
  auto top = open_dir_path(config_.project_dir + "/slurm", false);
  if (top) (void)remove_tree_at(top->get(), config_.run_id);
}

}  // namespace batman::slurm
