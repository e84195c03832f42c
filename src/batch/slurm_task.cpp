// `batman __slurm-task MANIFEST [INDEX]`: the task wrapper the slurm executor's job script
// runs on the node. It runs one attempt (the manifest's element INDEX, else
// $SLURM_ARRAY_TASK_ID, else 0) through the one launch path, under the batch's isolation tier
// and profile as chosen on this node, with the attempt's timeout; writes its output to the
// attempt's log in the project tree; and renames a result file (exit code, signal, timeout,
// times, node) into the run's results/ for batman to read. `--probe TOKEN RESULT`: the test job
// that shows batman is installed on the node and that the node shares batman's files.
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "common/time_format.hpp"
#include "isolation/backend.hpp"
#include "isolation/profile_cache.hpp"
#include "isolation/spawn.hpp"
#include "runner/event_loop.hpp"
#include "runner/job.hpp"
#include "runner/job_set.hpp"
#include "runner/launch.hpp"
#include "runner/output.hpp"
#include "src/batch/slurm_executor.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/project.hpp"

namespace batman::slurm {
namespace {

using nlohmann::json;

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

// The log, as the local executor writes it: every byte the attempt prints.
class LogFile final : public runner::Sink {
 public:
  explicit LogFile(UniqueFd fd) : fd_(std::move(fd)) {}
  void write(std::string_view data) override { (void)write_all(fd_.get(), data); }

 private:
  UniqueFd fd_;
};

int run_probe(const std::string& token_path, const std::string& result_path) {
  auto token = read_file(token_path, 4096);
  if (!token) {
    std::cerr << "batman: " << token_path << ": " << token.error().message
              << " (the node does not see the submitting host's files)\n";
    return 1;
  }
  std::string text = *token;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const auto slash = result_path.rfind('/');
  auto dir = open_dir_path(result_path.substr(0, slash), false);
  if (!dir) {
    std::cerr << "batman: " << dir.error().message << "\n";
    return 1;
  }
  if (auto w = write_file_atomic(dir->get(), result_path.substr(slash + 1), text + " " + host_name() + "\n", 0600); !w) {
    std::cerr << "batman: " << w.error().message << "\n";
    return 1;
  }
  return 0;
}

class TaskRun final : public runner::JobSet::Owner {
 public:
  void on_settled(runner::Job&) override { loop->stop(); }
  std::unique_ptr<runner::EventLoop> loop;
};

struct Outcome {
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string error;
  std::string tier;
  WallTime started{}, ended{};
};

Outcome run_element(const json& m, const json& e, int results_fd) {
  Outcome o;
  o.started = std::chrono::system_clock::now();
  auto failed = [&](std::string why) {
    o.error = std::move(why);
    o.ended = std::chrono::system_clock::now();
    return o;
  };
  const std::string home = m.at("home").get<std::string>();
  ::setenv("BATMAN_HOME", home.c_str(), 1);
  auto tree = cli::open_project(m.at("project").get<std::string>(), false);
  if (!tree) return failed(tree.error().message + " (is " + home + " shared with this node?)");
  auto requested = isolation::parse_tier(m.at("tier").get<std::string>());
  if (!requested) return failed(requested.error().message);
  auto tier = isolation::choose_tier(*requested);
  if (!tier) return failed("on node " + host_name() + ": " + tier.error().message);
  o.tier = std::string(isolation::tier_name(tier->tier));
  auto profile = isolation::load_profile_cached(m.at("profile").get<std::string>(), home);
  if (!profile) return failed("on node " + host_name() + ": " + profile.error().message);

  const std::string log_name = e.at("log").get<std::string>();
  auto log_fd = open_regular_at(tree->logs_fd.get(), log_name, O_WRONLY | O_CREAT | O_TRUNC, 0600,
                                tree->logs_path() + "/" + log_name);
  if (!log_fd) return failed(log_fd.error().message);
  LogFile log(std::move(*log_fd));

  runner::LaunchSpec spec;
  spec.project = tree->name;
  spec.home = tree->home;
  spec.project_dir = tree->dir;
  spec.run_id = e.at("task_id").get<std::string>();
  spec.tmp_dir = tree->tmp_path() + "/" + spec.run_id;
  const int attempt = e.at("attempt").get<int>();
  spec.unit_parts = {spec.run_id, std::to_string(attempt)};
  spec.command = e.at("command").get<std::string>();
  spec.cwd = e.at("cwd").get<std::string>();
  spec.tier = tier->tier;
  spec.profile = *profile;
  spec.limits = profile->limits;
  // The job's environment is the submitter's (sbatch exports it) with Slurm's own variables.
  spec.base_env = runner::current_environment();
  for (const auto& [k, v] : e.at("env").items()) spec.env.emplace_back(k, v.get<std::string>());
  spec.batman_vars = {{"BATMAN_TASK", e.at("name").get<std::string>()}, {"BATMAN_ATTEMPT", std::to_string(attempt)}};
  if (auto made = make_dir_at(tree->tmp_fd.get(), spec.run_id); !made && made.error().code != EEXIST)
    return failed("create " + spec.tmp_dir + ": " + made.error().message);

  TaskRun run;
  auto loop = runner::EventLoop::create();
  if (!loop) return failed(loop.error().message);
  run.loop = std::move(*loop);
  ::signal(SIGPIPE, SIG_IGN);
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  runner::JobSet jobs(*run.loop, run);
  runner::RestartRules rules;
  rules.autorestart = runner::AutoRestart::Never;
  rules.startretries = 0;
  rules.starttime = Duration::zero();
  rules.stoptime = std::chrono::seconds(1);
  runner::Job& job = jobs.add(isolation::make_backend(tier->tier), runner::launch_request(spec), rules, {&log}, {&log},
                              devnull.get());
  bool stopping = false;
  // scancel (SIGTERM, then SIGKILL after KillWait) or the node going down: the task's tree
  // gets the stop sequence and the result says it was killed.
  if (auto h = run.loop->handle_signals({SIGINT, SIGTERM, SIGHUP, SIGCHLD},
                                        [&](const signalfd_siginfo& i) {
                                          const int sig = static_cast<int>(i.ssi_signo);
                                          if (sig == SIGCHLD) {
                                            isolation::reap_strays(jobs.live_pids());
                                            return;
                                          }
                                          if (stopping) {
                                            job.signal_tree(SIGKILL);
                                            return;
                                          }
                                          stopping = true;
                                          job.process().stop(SIGTERM, std::chrono::seconds(1));
                                        });
      !h)
    return failed(h.error().message);
  auto prepared = job.prepare();
  if (!prepared) return failed(prepared.error().message);
  const auto timeout = std::chrono::milliseconds(e.at("timeout_ms").get<long long>());
  if (timeout > Duration::zero()) {
    run.loop->add_timer_after(timeout, [&] {
      if (job.process().settled()) return;
      o.timed_out = true;
      job.process().stop(SIGTERM, std::chrono::seconds(1));
    });
  }
  job.process().start();
  if (!job.process().settled()) (void)run.loop->run();
  job.finish();
  if (!isolation::has_own_pid_namespace(tier->tier, *profile)) isolation::kill_all_descendants();
  if (const auto exit = job.process().last_exit()) {
    o.exit_code = exit->code;
    o.signal = exit->signal;
  } else {
    o.error = job.spawn_error() ? job.spawn_error()->message : job.process().reason();
  }
  (void)remove_tree_at(tree->tmp_fd.get(), spec.run_id);
  (void)results_fd;
  o.ended = std::chrono::system_clock::now();
  return o;
}

}  // namespace

int command_slurm_task(const std::vector<std::string>& args) {
  if (args.size() == 3 && args[0] == "--probe") return run_probe(args[1], args[2]);
  if (args.empty() || args.size() > 2) {
    cli::error("usage: batman __slurm-task MANIFEST [INDEX] (run by batman batch --executor slurm on a node)");
    return cli::kExitBatmanError;
  }
  auto text = read_file(args[0], std::size_t{256} << 20);
  if (!text) {
    cli::error(text.error().message + " (the node does not see the submitting host's files?)");
    return cli::kExitBatmanError;
  }
  std::size_t index = 0;
  const char* array_index = std::getenv("SLURM_ARRAY_TASK_ID");
  const std::string which = args.size() == 2 ? args[1] : (array_index ? array_index : "0");
  try {
    index = std::stoul(which);
  } catch (const std::exception&) {
    cli::error("__slurm-task: element '" + which + "' is not a number");
    return cli::kExitBatmanError;
  }
  json m, e;
  try {
    m = json::parse(*text);
    const auto& elements = m.at("elements");
    if (index >= elements.size()) {
      cli::error(args[0] + ": no element " + std::to_string(index));
      return cli::kExitBatmanError;
    }
    e = elements[index];
  } catch (const std::exception& ex) {
    cli::error(args[0] + ": " + ex.what());
    return cli::kExitBatmanError;
  }
  const std::string results = m.value("results", "");
  auto results_fd = open_dir_path(results, false);
  if (!results_fd) {
    cli::error(results_fd.error().message);
    return cli::kExitBatmanError;
  }
  Outcome o;
  try {
    o = run_element(m, e, results_fd->get());
  } catch (const std::exception& ex) {
    o.error = std::string("bad manifest ") + args[0] + ": " + ex.what();
    o.ended = std::chrono::system_clock::now();
  }
  json r;
  r["exit_code"] = o.exit_code;
  r["signal"] = o.signal;
  r["timed_out"] = o.timed_out;
  r["error"] = o.error;
  r["started"] = format_rfc3339(o.started);
  r["ended"] = format_rfc3339(o.ended);
  r["host"] = host_name();
  r["tier"] = o.tier;
  const char* job = std::getenv("SLURM_JOB_ID");
  r["slurm_job_id"] = job ? job : "";
  const std::string name = std::to_string(e.value("task", 0)) + "." + std::to_string(e.value("attempt", 0)) + ".json";
  if (auto w = write_file_atomic(results_fd->get(), name, r.dump(), 0600); !w) {
    cli::error("write " + results + "/" + name + ": " + w.error().message);
    return cli::kExitBatmanError;
  }
  if (!o.error.empty()) {
    cli::error(o.error);
    return cli::kExitBatmanError;
  }
  if (o.timed_out) return 124;
  return o.signal ? 128 + o.signal : o.exit_code;
}

}  // namespace batman::slurm
