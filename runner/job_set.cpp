// JobSet: owns the Jobs, defers their settles and destruction to the end of the loop turn.
#include "runner/job_set.hpp"

#include <algorithm>

namespace batman::runner {

JobSet::JobSet(EventLoop& loop, Owner& owner) : loop_(loop), owner_(owner) {}

JobSet::~JobSet() {
  if (pending_) loop_.cancel_deferred(*pending_);
  clear();
}

Job& JobSet::add(std::unique_ptr<isolation::Backend> backend, isolation::LaunchRequest request, RestartRules rules,
                 std::vector<Sink*> stdout_sinks, std::vector<Sink*> stderr_sinks, int stdin_fd) {
  Job::Listener* self = this;
  jobs_.push_back(std::make_unique<Job>(loop_, std::move(backend), std::move(request), std::move(rules), self,
                                        std::move(stdout_sinks), std::move(stderr_sinks), stdin_fd));
  return *jobs_.back();
}

std::vector<std::unique_ptr<Job>>::iterator JobSet::find(const Job& job) {
  return std::find_if(jobs_.begin(), jobs_.end(), [&](const auto& j) { return j.get() == &job; });
}

bool JobSet::contains(const Job& job) const {
  return std::any_of(jobs_.begin(), jobs_.end(), [&](const auto& j) { return j.get() == &job; });
}

void JobSet::remove(Job& job, bool now) {
  auto it = find(job);
  if (it == jobs_.end()) return;
  std::unique_ptr<Job> owned = std::move(*it);
  jobs_.erase(it);
  std::erase(settled_, owned.get());
  if (now) {
    owned->finish();
    return;  // destroyed here
  }
  removed_.push_back(std::move(owned));
  schedule();
}

void JobSet::clear() {
  settled_.clear();
  for (auto& j : removed_) j->finish();
  removed_.clear();
  for (auto& j : jobs_) j->finish();
  jobs_.clear();
}

std::vector<pid_t> JobSet::live_pids() const {
  std::vector<pid_t> out;
  for (const auto& j : jobs_)
    if (j->process().pid() > 0) out.push_back(j->process().pid());
  return out;
}

void JobSet::on_transition(Job& job, ProcState from, ProcState to, const std::string& why) {
  owner_.on_transition(job, from, to, why);
  if (job.process().settled() && std::find(settled_.begin(), settled_.end(), &job) == settled_.end())
    settled_.push_back(&job);
  schedule();
}

void JobSet::schedule() {
  if (!pending_) pending_ = loop_.defer([this] { deliver(); });
}

void JobSet::deliver() {
  pending_.reset();
  // Jobs removed during the turn: finished and gone, now that none of their methods runs.
  for (auto& j : removed_) j->finish();
  removed_.clear();
  // Each settle once, if the job is still ours and still settled (not restarted meanwhile).
  auto settled = std::move(settled_);
  settled_.clear();
  for (Job* job : settled) {
    if (!contains(*job) || !job->process().settled()) continue;
    owner_.on_settled(*job);
  }
  owner_.after_changes();
}

}  // namespace batman::runner
