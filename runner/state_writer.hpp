// StateWriter: state files (SPEC §5: temp file, fsync, rename) written on a thread of its own,
// so the event loop never waits for the disk between one task and the next; the same thread
// removes finished runs' tmp directories, for the same reason. A state still pending
// when a newer one of the same run arrives is replaced by it, and what is pending is written
// as one group sharing a journal commit.
#pragma once
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "runner/state_store.hpp"

namespace batman::runner {

class StateWriter {
 public:
  // `state_dirfd` is not owned and must outlive the writer. Start it after the signals the
  // event loop handles are blocked: the thread inherits that mask.
  explicit StateWriter(int state_dirfd);
  ~StateWriter();  // does what is pending, then joins
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  void submit(RunState state);
  // Remove `name` and everything below it inside `dirfd` (not owned; must stay open).
  void remove_tree(int dirfd, std::string name);
  // Block until every chore submitted is done; returns (and forgets) the errors seen.
  std::vector<Error> flush();

 private:
  void work();
  std::vector<Error> write_group(const std::vector<RunState>& group);

  int dirfd_;
  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::map<std::string, RunState> pending_;  // by run_id
  std::deque<std::string> order_;            // run_ids, first submitted first
  std::deque<std::pair<int, std::string>> removals_;
  std::vector<Error> errors_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace batman::runner
