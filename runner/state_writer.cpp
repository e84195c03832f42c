// The state writer's thread: newest state of each run wins, and what is pending is written as
// one group (every temp file written, then each fsynced, then each renamed into place), so a
// burst of short tasks costs one journal commit instead of one per file; then removals, whose
// emptied directories may be parked for reuse.
#include "runner/state_writer.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"

namespace batman::runner {
namespace {

constexpr std::size_t kMaxGroup = 64;

struct Staged {
  std::string target;  // <run-id>.json
  std::string temp;
  UniqueFd fd;
};

// SPEC §5's temp name: hidden, in the same directory, unique to this process and write.
std::string temp_name(const std::string& target) {
  unsigned int rnd = 0;
  if (::getrandom(&rnd, sizeof rnd, 0) < 0) rnd = static_cast<unsigned int>(::gettid());
  char suffix[40];
  std::snprintf(suffix, sizeof suffix, ".tmp.%d.%08x", ::getpid(), rnd);
  return "." + target + suffix;
}

}  // namespace

StateWriter::StateWriter(int state_dirfd) : dirfd_(state_dirfd), thread_([this] { work(); }) {}

StateWriter::~StateWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void StateWriter::submit(RunState state, Duration delay) {
  const auto due = std::chrono::steady_clock::now() + delay;
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(state.run_id);
    if (it == pending_.end()) {
      std::string id = state.run_id;
      order_.push_back(id);
      pending_.emplace(std::move(id), Pending{std::move(state), due});
    } else {
      // The newer state wins, and is written no later than the one it replaces would have been.
      it->second.state = std::move(state);
      it->second.due = std::min(it->second.due, due);
    }
  }
  wake_.notify_one();
}

void StateWriter::remove_tree(int dirfd, std::string name, bool park) {
  {
    std::lock_guard lock(mutex_);
    removals_.push_back(Removal{dirfd, std::move(name), park});
  }
  wake_.notify_one();
}

std::vector<Error> StateWriter::flush() {
  std::unique_lock lock(mutex_);
  ++flushing_;
  wake_.notify_one();
  idle_.wait(lock, [this] { return order_.empty() && removals_.empty() && !busy_; });
  --flushing_;
  return std::exchange(errors_, {});
}

void StateWriter::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    // Due: what was submitted without a delay, or whose delay is over; everything when
    // stopping or flushing.
    const auto now = std::chrono::steady_clock::now();
    const bool all = stopping_ || flushing_ > 0;
    std::optional<std::chrono::steady_clock::time_point> next;
    bool due = false;
    for (const auto& [id, p] : pending_) {
      if (p.due <= now) due = true;
      else if (!next || p.due < *next) next = p.due;
    }
    if (removals_.empty() && !(all ? !order_.empty() : due)) {
      if (stopping_) return;  // nothing left to do
      if (next && !all) wake_.wait_until(lock, *next);
      else wake_.wait(lock);
      continue;
    }
    std::vector<RunState> group;
    for (auto it = order_.begin(); it != order_.end() && group.size() < kMaxGroup;) {
      auto p = pending_.find(*it);
      if (!all && p->second.due > now) {
        ++it;
        continue;
      }
      group.push_back(std::move(p->second.state));
      pending_.erase(p);
      it = order_.erase(it);
    }
    auto removals = std::exchange(removals_, {});
    busy_ = true;
    lock.unlock();
    auto errors = write_group(group);
    for (const auto& r : removals) {
      auto removed = r.park ? remove_tree_parking(r.dirfd, r.name) : remove_tree_at(r.dirfd, r.name);
      if (!removed) errors.push_back(removed.error().wrap("remove " + r.name));
    }
    lock.lock();
    busy_ = false;
    for (auto& e : errors) errors_.push_back(std::move(e));
    if (order_.empty() && removals_.empty()) idle_.notify_all();
  }
}

std::vector<Error> StateWriter::write_group(const std::vector<RunState>& group) {
  std::vector<Error> errors;
  std::vector<Staged> staged;
  staged.reserve(group.size());
  auto failed = [&](Staged& s, const std::string& step) {
    const int err = errno;
    ::unlinkat(dirfd_, s.temp.c_str(), 0);
    errors.push_back(Error{"state " + s.target + ": " + step + " " + s.temp + ": " + std::strerror(err), err});
    s.fd.reset();
  };
  for (const auto& state : group) {
    Staged s{state.run_id + ".json", "", UniqueFd()};
    s.temp = temp_name(s.target);
    s.fd.reset(::openat(dirfd_, s.temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!s.fd) {
      errors.push_back(Error{"state " + s.target + ": create " + s.temp + ": " + std::strerror(errno), errno});
      continue;
    }
    if (auto w = write_all(s.fd.get(), to_json(state)); !w) {
      errno = w.error().code;
      failed(s, "write");
      continue;
    }
    staged.push_back(std::move(s));
  }
  // The first fsync commits the journal transaction that holds every file of the group.
  for (auto& s : staged)
    if (s.fd && ::fsync(s.fd.get()) != 0) failed(s, "fsync");
  for (auto& s : staged) {
    if (!s.fd) continue;
    s.fd.reset();
    if (::renameat(dirfd_, s.temp.c_str(), dirfd_, s.target.c_str()) != 0) failed(s, "rename");
  }
  return errors;
}

}  // namespace batman::runner
