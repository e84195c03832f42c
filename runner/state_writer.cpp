// The state writer's thread: one atomic write at a time, newest state of each run wins.
#include "runner/state_writer.hpp"

namespace batman::runner {

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

std::vector<Error> StateWriter::flush() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return order_.empty() && !busy_; });
  return std::exchange(errors_, {});
}

void StateWriter::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !order_.empty(); });
    if (order_.empty()) return;  // stopping, and nothing left to write
    auto node = pending_.extract(order_.front());
    order_.pop_front();
    busy_ = true;
    lock.unlock();
    auto written = write_state(dirfd_, node.mapped());
    lock.lock();
    busy_ = false;
    if (!written) errors_.push_back(written.error().wrap("state " + node.key()));
    if (order_.empty()) idle_.notify_all();
  }
}

}  // namespace batman::runner
