// What `batman batch` shows while it runs: on a terminal, a live block (counts, rate, ETA,
// one line per running task) redrawn in place; without one, a stats line every few seconds.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"

namespace batman::cli {

struct ViewCounts {
  std::size_t total = 0, queued = 0, running = 0, succeeded = 0, failed = 0, skipped = 0, interrupted = 0, stopped = 0,
              done = 0;
  int concurrency = 0;
};

struct ViewTask {
  std::string name;
  int attempt = 1;
  Duration elapsed{0};
  std::string last_line;  // the latest line of its output
};

// "queued 12, running 2/3, done 30, failed 1, skipped 0, 4.1/s, ETA 0:00:05"
std::string stats_line(const ViewCounts& counts, Duration elapsed);

class BatchView {
 public:
  // `fd` is a terminal when `live`; plain mode only formats (the caller prints the lines).
  BatchView(bool live, int fd);
  bool live() const { return live_; }
  // A line from batman, kept above the live block.
  void message(std::string_view text);
  // Redraw the live block in place.
  void draw(const ViewCounts& counts, const std::vector<ViewTask>& running, Duration elapsed);
  // Remove the live block (before the summary is printed).
  void clear();

 private:
  int width() const;
  bool live_;
  int fd_;
  int drawn_lines_ = 0;
};

}  // namespace batman::cli
