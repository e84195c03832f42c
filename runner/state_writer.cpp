// The state writer's thread: newest state of each run wins, and what is pending is written as
// one group (every temp file written, then each fsynced, then each renamed into place), so a
// burst of short tasks costs one journal commit instead of one per file; then removals, whose
// emptied directories are parked for reuse.
#include "runner/state_writer.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"

namespace batman::runner {
namespace {

constexpr std::size_t kMaxGroup = 64;
constexpr std::size_t kMaxSpares = 64;

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
  drop_spares();
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

void StateWriter::remove_tree(int dirfd, std::string name) {
  {
    std::lock_guard lock(mutex_);
    removals_.emplace_back(dirfd, std::move(name));
  }
  wake_.notify_one();
}

std::vector<Error> StateWriter::flush() {
  std::unique_lock lock(mutex_);
  ++flushing_;
  wake_.notify_one();
  idle_.wait(lock, [this] { return order_.empty() && removals_.empty() && !busy_; });
  --flushing_;
  drop_spares();  // the thread is idle and cannot start a group while this holds the lock
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
    for (const auto& [dirfd, name] : removals) {
      if (auto removed = remove_tree_parking(dirfd, name); !removed)
        errors.push_back(removed.error().wrap("remove " + name));
    }
    lock.lock();
    busy_ = false;
    for (auto& e : errors) errors_.push_back(std::move(e));
    if (order_.empty() && removals_.empty()) idle_.notify_all();
  }
}

// A state file is replaced with renameat2(RENAME_EXCHANGE): the file it replaces stays behind
// under the temporary name and is overwritten by a later write, instead of each replacement
// deleting an inode and freeing its block (costly on ext4 without a journal: see
// remove_tree_parking in common/fs.hpp). It is overwritten in place and cut to length, never
// truncated to 0 first, so its block is kept.
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
    while (!s.fd && !spares_.empty()) {
      s.temp = std::move(spares_.back());
      spares_.pop_back();
      s.fd.reset(::openat(dirfd_, s.temp.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!s.fd) ::unlinkat(dirfd_, s.temp.c_str(), 0);
    }
    if (!s.fd) {
      s.temp = temp_name(s.target);
      s.fd.reset(::openat(dirfd_, s.temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    }
    if (!s.fd) {
      errors.push_back(Error{"state " + s.target + ": create " + s.temp + ": " + std::strerror(errno), errno});
      continue;
    }
    const std::string text = to_json(state);
    if (auto w = write_all(s.fd.get(), text); !w) {
      errno = w.error().code;
      failed(s, "write");
      continue;
    }
    if (::ftruncate(s.fd.get(), static_cast<off_t>(text.size())) != 0) {
      failed(s, "truncate");
      continue;
    }
    staged.push_back(std::move(s));
  }
  for (auto& s : staged)
    if (s.fd && ::fsync(s.fd.get()) != 0) failed(s, "fsync");
  for (auto& s : staged) {
    if (!s.fd) continue;
    s.fd.reset();
    // Only a regular file is exchanged; anything else in the way is replaced, or refused, by
    // rename as before.
    struct stat old{};
    if (::fstatat(dirfd_, s.target.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(old.st_mode) &&
        ::renameat2(dirfd_, s.temp.c_str(), dirfd_, s.target.c_str(), RENAME_EXCHANGE) == 0) {
      if (spares_.size() < kMaxSpares) spares_.push_back(std::move(s.temp));
      else ::unlinkat(dirfd_, s.temp.c_str(), 0);
      continue;
    }
    // The first state of a run (nothing to exchange with), or no RENAME_EXCHANGE here.
    if (::renameat(dirfd_, s.temp.c_str(), dirfd_, s.target.c_str()) != 0) failed(s, "rename");
  }
  return errors;
}

void StateWriter::drop_spares() {
  for (const auto& name : spares_) ::unlinkat(dirfd_, name.c_str(), 0);
  spares_.clear();
}

}  // namespace batman::runner
