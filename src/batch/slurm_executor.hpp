// The slurm executor of `batman batch --executor slurm`: where the scheduler's attempts are
// submitted with sbatch (several started in one loop turn that share their options as one job
// array), cancelled with scancel, and where their ends come back from the result files the
// task wrapper (`batman __slurm-task`, slurm_task.cpp) writes into the project tree, watched
// with inotify and, for a shared file system that tells no one, a bounded squeue poll.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "common/time_format.hpp"
#include "common/unique_fd.hpp"
#include "runner/event_loop.hpp"
#include "src/batch/sbatch_command.hpp"

namespace batman::slurm {

// What the executor needs to know of the run, fixed before the first submission.
struct ExecutorConfig {
  std::string home;         // $BATMAN_HOME, absolute
  std::string project;
  std::string project_dir;  // absolute
  std::string run_id;       // the batch run's
  std::string tier;         // the --isolation word the node chooses its tier by ("auto")
  std::string profile;      // the profile's name, or its absolute path
  std::string batman;       // the batman the node runs (absolute path)
  SbatchOptions options;    // partition, account, qos, --slurm-opt
  std::size_t max_array = 1000;  // elements per array; 1 = one sbatch per attempt
  Duration probe_timeout = std::chrono::seconds(120);
};

// One attempt to run on the cluster.
struct Element {
  std::size_t task = 0;  // the scheduler's index
  int attempt = 1;
  std::string name;      // the task's
  std::string task_id;   // "<run-id>.<task>": BATMAN_RUN_ID, state and tmp name
  std::string command;
  std::string cwd;       // absolute
  std::map<std::string, std::string> env;
  Duration timeout{0};   // 0 = none; the wrapper enforces it from the moment the task starts
  std::string log;       // the attempt's log name in logs/
  int throttle = 0;      // the batch's concurrency limit when it was submitted (--array %M)
};

// What the wrapper wrote when the attempt ended, or what batman concluded without it.
struct ElementResult {
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string error;  // the attempt did not run (sbatch refused it, the job vanished, ...)
  std::optional<WallTime> started, ended;  // on the node
  std::string host;
  std::string job;    // "123_4"
  std::string tier;   // the node's isolation tier
};

class Executor {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void on_submitted(std::size_t task, const std::string& job) = 0;
    virtual void on_running(std::size_t task) = 0;
    virtual void on_result(std::size_t task, int attempt, ElementResult result) = 0;
    virtual void on_executor_log(const std::string& message) = 0;
  };

  // Create the run's directory ($project_dir/slurm/<run-id>/: the job script, the manifests,
  // results/ and Slurm's own output of each job) and watch its results.
  static Result<std::unique_ptr<Executor>> create(runner::EventLoop& loop, Listener& listener, ExecutorConfig config);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Submit a test job that runs the wrapper on a node and checks that batman is there and
  // that the node and this host see the same project tree. Blocks up to probe_timeout.
  Result<void> probe();
  // Queue `element` for submission at the end of this loop turn; its end comes back through
  // Listener::on_result (also when sbatch refuses it).
  void submit(Element element);
  // scancel the task's job (at the end of this loop turn, one scancel for all); its end is
  // reported at once as killed by SIGTERM.
  void cancel(std::size_t task);
  // scancel every job of the run still known to be queued or running (at batman's exit).
  void cancel_all();
  // The run's directory, for messages.
  const std::string& directory() const { return dir_; }
  // Submissions made (sbatch calls) and squeue calls, for the end summary.
  std::size_t sbatch_calls() const { return sbatch_calls_; }
  std::size_t squeue_calls() const { return squeue_calls_; }
  // Remove the run's directory (after a run whose every task succeeded).
  void remove_directory();

 private:
  Executor(runner::EventLoop& loop, Listener& listener, ExecutorConfig config);
  void flush();
  void flush_cancels();
  void submit_group(const std::vector<Element>& group);
  void read_results();
  void poll();
  void schedule_poll();
  void report(std::size_t task, int attempt, ElementResult result);
  std::string job_name() const;

  struct InFlight {
    int attempt = 0;
    std::string job;
    bool running = false;
    int missing = 0;  // squeue polls in a row that did not list it
  };

  runner::EventLoop& loop_;
  Listener& listener_;
  ExecutorConfig config_;
  std::string dir_;
  UniqueFd dir_fd_, results_fd_, inotify_;
  std::vector<Element> pending_;
  std::vector<std::string> cancels_;
  std::optional<runner::EventLoop::TimerId> flush_id_, cancel_id_;
  std::map<std::size_t, InFlight> inflight_;
  std::optional<runner::EventLoop::TimerId> poll_timer_;
  Duration poll_interval_ = std::chrono::seconds(1);
  std::string last_queue_;
  std::size_t submissions_ = 0, sbatch_calls_ = 0, squeue_calls_ = 0;
  std::optional<bool> sacct_;  // whether sacct answers (asked once, when first needed)
};

// The task wrapper (`batman __slurm-task MANIFEST [INDEX]` and `--probe TOKEN RESULT`), run by
// the job script on the node.
int command_slurm_task(const std::vector<std::string>& args);

}  // namespace batman::slurm
