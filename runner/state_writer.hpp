// StateWriter: state files (SPEC §5: temp file, fsync, rename) written on a thread of its own,
// so the event loop never waits for the disk between one task and the next; the same thread
// removes finished runs' tmp directories, for the same reason. A state still pending
// when a newer one of the same run arrives is replaced by it, and what is pending is written
// as one group sharing a journal commit.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "common/fs.hpp"
#include "runner/state_store.hpp"

namespace batman::runner {

class StateWriter {
 public:
  // `state_dirfd` is not owned and must outlive the writer. Start it after the signals the
  // event loop handles are blocked: the thread inherits that mask. `clock` says when a delayed
  // state or a retry is due (tests pass a FakeClock and settle() after advancing it); it must
  // outlive the writer.
  explicit StateWriter(int state_dirfd, const Clock& clock = system_clock());
  ~StateWriter();  // does what is pending, then joins
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  // Written `delay` from now at the latest (sooner when a newer state of the run replaces it
  // or flush() is called): a run that changes again within the delay gets one write, not two.
  void submit(RunState state, Duration delay = Duration::zero());
  // Written now into `file`, made (and given room: PendingFile::reserve) by the caller before
  // the run started, so that a disk filled meanwhile cannot keep this state off it.
  void submit_into(PendingFile file, RunState state);
  // Remove `name` and everything below it inside `dirfd` (not owned; must stay open).
  void remove_tree(int dirfd, std::string name);
  // Block until every chore submitted is done; returns (and forgets) the errors seen.
  std::vector<Error> flush();
  // Block until what is due by the clock's now is done (what is delayed stays pending) and
  // the writer waits for more: after a FakeClock's advance(), what the new time made due has
  // been written (or tried, and said through on_error) when this returns.
  void settle();
  // Told (on the writer's thread, one line) when a run's state could not be written and when
  // it was written after all. Set before the first submit().
  void set_on_error(std::function<void(const std::string&)> on_error);

  // A state that could not be written (a full disk) is first rewritten in place
  // (overwrite_in_place: no new block needed), else kept and tried again after kRetryFirst,
  // doubling up to kRetryMax, until written or replaced; flush() and the destructor try once
  // more and give up with an error.
  static constexpr Duration kRetryFirst = std::chrono::milliseconds(500);
  static constexpr Duration kRetryMax = std::chrono::seconds(30);

 private:
  struct Failed {
    RunState state;
    Error error;
  };
  void work();
  std::vector<Failed> write_group(const std::vector<RunState>& group,
                                  const std::vector<std::shared_ptr<PendingFile>>& reserved);

  bool any_due(TimePoint now) const;  // with mutex_ held

  int dirfd_;
  const Clock& clock_;
  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  struct Pending {
    RunState state;
    TimePoint due;
    std::shared_ptr<PendingFile> reserved;  // submit_into's file, else null
  };
  std::map<std::string, Pending> pending_;   // by run_id
  std::deque<std::string> order_;            // run_ids, first submitted first
  struct Removal {
    int dirfd;
    std::string name;
  };
  std::deque<Removal> removals_;
  std::vector<Error> errors_;
  std::function<void(const std::string&)> on_error_;
  std::map<std::string, Duration> failing_;  // run_id -> its last retry wait, while failing
  int flushing_ = 0;  // flush() calls waiting: everything pending is due
  bool busy_ = false;
  bool sleeping_ = false;  // the thread waits for work or a due time
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace batman::runner
