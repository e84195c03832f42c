// The live view of `batman batch` (ANSI redraw of a block at the bottom of the terminal) and
// the stats line used without a terminal.
#include "src/batch/batch_view.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>

#include "common/duration.hpp"
#include "common/fs.hpp"

namespace batman::cli {

std::string stats_line(const ViewCounts& c, Duration elapsed) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  const std::size_t done = c.succeeded + c.failed;
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  char rate_text[32];
  std::snprintf(rate_text, sizeof rate_text, "%.1f/s", rate);
  std::string eta = "-";
  if (rate > 0) {
    const double left = static_cast<double>(c.queued + c.running) / rate;
    eta = format_uptime(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(left)));
  }
  return "queued " + std::to_string(c.queued) + ", running " + std::to_string(c.running) + "/" +
         std::to_string(c.concurrency) + ", done " + std::to_string(c.succeeded) + ", failed " +
         std::to_string(c.failed) + ", skipped " + std::to_string(c.skipped) +
         (c.stopped ? ", stopped " + std::to_string(c.stopped) : "") + ", " + rate_text + ", ETA " + eta;
}

BatchView::BatchView(bool live, int fd) : live_(live), fd_(fd) {}

int BatchView::width() const {
  winsize ws{};
  if (::ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) return ws.ws_col;
  return 80;
}

void BatchView::clear() {
  if (!live_ || drawn_lines_ == 0) return;
  // Up to the block's first line, then erase to the end of the screen.
  (void)write_all(fd_, "\r\033[" + std::to_string(drawn_lines_) + "F\033[J");
  drawn_lines_ = 0;
}

void BatchView::message(std::string_view text) {
  clear();
  std::string line = "batman: " + std::string(text) + "\n";
  (void)write_all(fd_, line);
}

void BatchView::draw(const ViewCounts& counts, const std::vector<ViewTask>& running, Duration elapsed) {
  if (!live_) return;
  const auto cols = static_cast<std::size_t>(width());
  auto fit = [&](std::string s) {
    for (char& ch : s)
      if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
    if (s.size() >= cols) s.resize(cols - 1);
    return s + "\033[K\n";
  };
  std::string block = fit("batman: " + stats_line(counts, elapsed));
  constexpr std::size_t kShown = 15;
  int lines = 1;
  for (std::size_t i = 0; i < running.size() && i < kShown; ++i) {
    const auto& t = running[i];
    std::string line = "  " + t.name + (t.attempt > 1 ? " (attempt " + std::to_string(t.attempt) + ")" : "") +
                       "  " + format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(t.elapsed) / 100 * 100);
    if (!t.last_line.empty()) line += "  " + t.last_line;
    block += fit(line);
    ++lines;
  }
  if (running.size() > kShown) {
    block += fit("  ... and " + std::to_string(running.size() - kShown) + " more");
    ++lines;
  }
  std::string out;
  if (drawn_lines_ > 0) out = "\r\033[" + std::to_string(drawn_lines_) + "F";
  out += block + "\033[J";
  (void)write_all(fd_, out);
  drawn_lines_ = lines;
}

}  // namespace batman::cli
