// The state writer's thread: newest state of each run wins, and what is pending is written as
// one group (every temporary file written, then each fsynced, then each linked or renamed
// into place: common/fs.hpp's PendingFile), so a burst of short tasks costs one journal
// commit instead of one per file; then removals.
#include "runner/state_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <optional>

#include "common/fs.hpp"

namespace batman::runner {
namespace {

constexpr std::size_t kMaxGroup = 64;

}  // namespace

StateWriter::StateWriter(int state_dirfd, const Clock& clock)
    : dirfd_(state_dirfd), clock_(clock), thread_([this] { work(); }) {}

StateWriter::~StateWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void StateWriter::submit(RunState state, Duration delay) {
  const TimePoint due = clock_.now() + std::chrono::duration_cast<SteadyClock::duration>(delay);
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(state.run_id);
    if (it == pending_.end()) {
      std::string id = state.run_id;
      order_.push_back(id);
      pending_.emplace(std::move(id), Pending{std::move(state), due, nullptr});
    } else {
      // The newer state wins, and is written no later than the one it replaces would have been.
      it->second.state = std::move(state);
      it->second.due = std::min(it->second.due, due);
    }
  }
  wake_.notify_one();
}

void StateWriter::submit_into(PendingFile file, RunState state) {
  auto reserved = std::make_shared<PendingFile>(std::move(file));
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(state.run_id);
    const auto now = clock_.now();
    if (it == pending_.end()) {
      std::string id = state.run_id;
      order_.push_back(id);
      pending_.emplace(std::move(id), Pending{std::move(state), now, std::move(reserved)});
    } else {
      it->second.state = std::move(state);
      it->second.due = now;
      it->second.reserved = std::move(reserved);
    }
  }
  wake_.notify_one();
}

void StateWriter::remove_tree(int dirfd, std::string name) {
  {
    std::lock_guard lock(mutex_);
    removals_.push_back(Removal{dirfd, std::move(name)});
  }
  wake_.notify_one();
}

void StateWriter::set_on_error(std::function<void(const std::string&)> on_error) {
  std::lock_guard lock(mutex_);
  on_error_ = std::move(on_error);
}

std::vector<Error> StateWriter::flush() {
  std::unique_lock lock(mutex_);
  ++flushing_;
  wake_.notify_one();
  idle_.wait(lock, [this] { return order_.empty() && removals_.empty() && !busy_; });
  --flushing_;
  return std::exchange(errors_, {});
}

void StateWriter::settle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return sleeping_ && removals_.empty() && !any_due(clock_.now()); });
}

bool StateWriter::any_due(TimePoint now) const {
  return std::any_of(pending_.begin(), pending_.end(), [&](const auto& p) { return p.second.due <= now; });
}

void StateWriter::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    // Due: what was submitted without a delay, or whose delay is over; everything when
    // stopping or flushing.
    const TimePoint now = clock_.now();
    const bool all = stopping_ || flushing_ > 0;
    std::optional<TimePoint> next;
    bool due = false;
    for (const auto& [id, p] : pending_) {
      if (p.due <= now) due = true;
      else if (!next || p.due < *next) next = p.due;
    }
    if (removals_.empty() && !(all ? !order_.empty() : due)) {
      if (stopping_) return;  // nothing left to do
      sleeping_ = true;
      idle_.notify_all();  // settle() waits for this
      clock_.wait_until(wake_, lock, next && !all ? *next : TimePoint::max());
      sleeping_ = false;
      continue;
    }
    std::vector<RunState> group;
    std::vector<std::shared_ptr<PendingFile>> reserved;
    for (auto it = order_.begin(); it != order_.end() && group.size() < kMaxGroup;) {
      auto p = pending_.find(*it);
      if (!all && p->second.due > now) {
        ++it;
        continue;
      }
      group.push_back(std::move(p->second.state));
      reserved.push_back(std::move(p->second.reserved));
      pending_.erase(p);
      it = order_.erase(it);
    }
    auto removals = std::exchange(removals_, {});
    busy_ = true;
    const auto on_error = on_error_;
    lock.unlock();
    auto failed = write_group(group, reserved);
    std::vector<Error> errors;
    for (const auto& r : removals) {
      auto removed = remove_tree_at(r.dirfd, r.name);
      if (!removed) errors.push_back(removed.error().wrap("remove " + r.name));
    }
    std::vector<std::string> said;  // told on_error once the lock is let go
    lock.lock();
    busy_ = false;
    for (const auto& state : group) {
      const bool now_failed = std::any_of(failed.begin(), failed.end(),
                                          [&](const Failed& f) { return f.state.run_id == state.run_id; });
      if (!now_failed && failing_.erase(state.run_id))
        said.push_back("state " + state.run_id + ".json: written after all");
    }
    for (auto& f : failed) {
      auto& wait = failing_[f.state.run_id];
      if (wait == Duration::zero())
        said.push_back(f.error.message + " (status " + f.state.status + (all ? ")" : "; trying again)"));
      if (all) {
        errors_.push_back(std::move(f.error));
        failing_.erase(f.state.run_id);
        continue;
      }
      // Tried again later, unless a newer state of the run came meanwhile (it goes instead).
      wait = std::min<Duration>(wait == Duration::zero() ? kRetryFirst : wait * 2, kRetryMax);
      const std::string id = f.state.run_id;
      if (!pending_.contains(id)) {
        order_.push_back(id);
        pending_.emplace(id, Pending{std::move(f.state), clock_.now() + wait, nullptr});
      }
    }
    for (auto& e : errors) errors_.push_back(std::move(e));
    if (order_.empty() && removals_.empty()) idle_.notify_all();
    if (on_error && !said.empty()) {
      lock.unlock();
      for (const auto& line : said) on_error(line);
      lock.lock();
    }
  }
}

std::vector<StateWriter::Failed> StateWriter::write_group(const std::vector<RunState>& group,
                                                          const std::vector<std::shared_ptr<PendingFile>>& reserved) {
  std::vector<Failed> failures;
  // A state that could not be written the usual way: on a full disk it is rewritten in place
  // (its old file's blocks are reused), else it is a failure, tried again later.
  auto failed = [&](const RunState& state, const Error& e) {
    if (rewrite_state_in_place(dirfd_, state, to_json(state), e.code ? e.code : EIO)) return;
    failures.push_back(Failed{state, Error{"state " + state.run_id + ".json: " + e.message, e.code}});
  };
  struct Staged {
    PendingFile file;
    const RunState* state;
  };
  std::vector<Staged> staged;
  staged.reserve(group.size());
  for (std::size_t g = 0; g < group.size(); ++g) {
    const RunState& state = group[g];
    if (reserved[g]) {
      // Its own file, with room made for it: written and published on its own.
      auto w = reserved[g]->sync(to_json(state));
      if (w) w = reserved[g]->publish();
      if (!w) failed(state, w.error());
      continue;
    }
    auto file = PendingFile::create(dirfd_, state.run_id + ".json");
    if (!file) {
      failed(state, file.error());
      continue;
    }
    if (auto w = file->write(to_json(state), false); !w) {
      failed(state, w.error());
      continue;
    }
    staged.push_back(Staged{std::move(*file), &state});
  }
  // The first fsync commits the journal transaction that holds every file of the group.
  std::vector<bool> synced(staged.size());
  for (std::size_t i = 0; i < staged.size(); ++i) {
    auto s = staged[i].file.sync();
    synced[i] = s.has_value();
    if (!s) failed(*staged[i].state, s.error());
  }
  for (std::size_t i = 0; i < staged.size(); ++i)
    if (synced[i])
      if (auto p = staged[i].file.publish(); !p) failed(*staged[i].state, p.error());
  return failures;
}

}  // namespace batman::runner
