// JobSet: the one owner of a front end's Jobs (as ninja's SubprocessSet owns its
// Subprocesses). It creates every Job, passes the Job's events on to its owner, and after the
// loop turn in which a job settled (will not start again by itself) hands it back through
// Owner::on_settled, outside every callback of that job: there the owner reads its outcome,
// and may drop it (remove) or, for a supervised program, start it again later. Removed jobs
// are finished (output read dry, leftovers killed, cgroup released) and destroyed after the
// turn, so a front end needs no graveyard and no settling flags.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "runner/event_loop.hpp"
#include "runner/job.hpp"

namespace batman::runner {

class JobSet final : private Job::Listener {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    // Called from inside the job's own methods (as Job::Listener's): do not remove it here
    // expecting it gone at once (remove defers), and do not start it again from here.
    virtual void on_transition(Job&, ProcState /*from*/, ProcState /*to*/, const std::string& /*why*/) {}
    virtual void on_starting(Job&, pid_t) {}
    virtual Result<void> prepare_start(Job&) { return {}; }
    virtual void on_spawned(Job&, pid_t) {}
    // After the loop turn in which `job` settled and is still settled (a restart within the
    // turn is not a settle). Each settle is told once.
    virtual void on_settled(Job& job) = 0;
    // Once after every loop turn in which any job changed state, after the on_settled calls:
    // where commands waiting on several jobs look again.
    virtual void after_changes() {}
  };

  JobSet(EventLoop& loop, Owner& owner);
  ~JobSet() override;  // finishes and destroys every job left
  JobSet(const JobSet&) = delete;
  JobSet& operator=(const JobSet&) = delete;

  // A new job, owned here until removed. `stdin_fd` is not owned (-1 = /dev/null).
  Job& add(std::unique_ptr<isolation::Backend> backend, isolation::LaunchRequest request, RestartRules rules,
           std::vector<Sink*> stdout_sinks, std::vector<Sink*> stderr_sinks, int stdin_fd = -1);
  // Stop owning `job`: it is finished and destroyed once the current turn is over (at once
  // when `now` and the caller is outside the job's callbacks). Its pending on_settled is
  // dropped. Removing an unknown job is a no-op.
  void remove(Job& job, bool now = false);
  // Finish every job and destroy it now (outside every job callback).
  void clear();

  bool contains(const Job& job) const;
  std::size_t size() const { return jobs_.size(); }
  // Every job's latest leader pid (what orphan reaping must leave to the job's own wait).
  std::vector<pid_t> live_pids() const;

 private:
  void on_transition(Job&, ProcState from, ProcState to, const std::string& why) override;
  void on_starting(Job& job, pid_t pid) override { owner_.on_starting(job, pid); }
  Result<void> prepare_start(Job& job) override { return owner_.prepare_start(job); }
  void on_spawned(Job& job, pid_t pid) override { owner_.on_spawned(job, pid); }
  void schedule();
  void deliver();
  std::vector<std::unique_ptr<Job>>::iterator find(const Job& job);

  EventLoop& loop_;
  Owner& owner_;
  std::vector<std::unique_ptr<Job>> jobs_;
  std::vector<std::unique_ptr<Job>> removed_;  // destroyed after the turn
  std::vector<Job*> settled_;                  // settled in this turn, in order
  std::optional<EventLoop::TimerId> pending_;  // the deferred delivery, when one is due
};

}  // namespace batman::runner
