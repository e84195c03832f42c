// The state writer's thread: newest state of each run wins, and what is pending is written as
// one group (every temp file written, then each fsynced, then each renamed into place), so a
// burst of short tasks costs one journal commit instead of one per file; then removals.
#include "runner/state_writer.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

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

void StateWriter::submit(RunState state) {
  {
    std::lock_guard lock(mutex_);
    auto [it, fresh] = pending_.insert_or_assign(state.run_id, std::move(state));
    if (fresh) order_.push_back(it->first);
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
  idle_.wait(lock, [this] { return order_.empty() && removals_.empty() && !busy_; });
  return std::exchange(errors_, {});
}

void StateWriter::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !order_.empty() || !removals_.empty(); });
    if (order_.empty() && removals_.empty()) return;  // stopping, and nothing left to do
    std::vector<RunState> group;
    while (!order_.empty() && group.size() < kMaxGroup) {
      group.push_back(std::move(pending_.extract(order_.front()).mapped()));
      order_.pop_front();
    }
    auto removals = std::exchange(removals_, {});
    busy_ = true;
    lock.unlock();
    auto errors = write_group(group);
    for (const auto& [dirfd, name] : removals) {
      if (auto removed = remove_tree_at(dirfd, name); !removed)
        errors.push_back(removed.error().wrap("remove " + name));
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
