// Batch reports: JSON, JUnit XML, GNU parallel's joblog and the summary table.
#include "src/batch/batch_report.hpp"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/duration.hpp"

namespace batman::cli {
namespace {

double seconds_of(Duration d) { return std::chrono::duration<double>(d).count(); }

double epoch_seconds(WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

// Text as XML character data: escaped, and without the control characters XML 1.0 forbids
// (a task's log may hold anything; a JUnit reader must still accept the file).
std::string xml_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += '?';
        } else if (c >= 0x80) {
          // Keep well-formed UTF-8 sequences, replace stray bytes.
          const int length = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
          bool valid = length > 0 && i + static_cast<std::size_t>(length) <= text.size();
          for (int k = 1; valid && k < length; ++k)
            valid = (static_cast<unsigned char>(text[i + static_cast<std::size_t>(k)]) & 0xC0) == 0x80;
          if (valid) {
            out.append(text.substr(i, static_cast<std::size_t>(length)));
            i += static_cast<std::size_t>(length) - 1;
          } else {
            out += '?';
          }
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

Duration task_runtime(const ReportTask& t) {
  Duration total{0};
  for (const auto& a : t.attempts) total += a.runtime;
  return total;
}

// nlohmann's dump throws on invalid UTF-8 unless told otherwise.
std::string dump(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

Report::Counts Report::counts(const ReportBatch& batch) const {
  Counts c;
  for (const auto& t : batch.tasks) {
    ++c.total;
    if (t.status == "succeeded") ++c.succeeded;
    else if (t.status == "skipped") ++c.skipped;
    else if (t.status == "interrupted") ++c.interrupted;
    else if (t.status == "stopped") ++c.stopped;
    else if (t.status == "done") ++c.done;
    else ++c.failed;
  }
  return c;
}

Report::Counts Report::counts() const {
  Counts all;
  for (const auto& b : batches) {
    auto c = counts(b);
    all.total += c.total;
    all.succeeded += c.succeeded;
    all.failed += c.failed;
    all.skipped += c.skipped;
    all.interrupted += c.interrupted;
    all.stopped += c.stopped;
    all.done += c.done;
  }
  all.total += succeeded_not_listed;
  all.succeeded += succeeded_not_listed;
  return all;
}

std::string last_lines(const std::string& text, std::size_t lines) {
  std::size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  std::size_t start = end;
  for (std::size_t found = 0; start > 0; --start) {
    if (text[start - 1] == '\n' && ++found == lines) break;
  }
  return text.substr(start, end - start);
}

std::string report_json(const Report& report) {
  using nlohmann::json;
  const auto c = report.counts();
  json root{{"project", report.project},
            {"run_id", report.run_id},
            {"isolation", report.isolation},
            {"started_at", format_rfc3339(report.started)},
            {"elapsed_seconds", seconds_of(report.elapsed)},
            {"interrupted", report.interrupted},
            {"summary", {{"total", c.total}, {"succeeded", c.succeeded}, {"failed", c.failed}, {"skipped", c.skipped},
                         {"interrupted", c.interrupted}, {"stopped", c.stopped}, {"done", c.done}}},
            {"events", report.events},
            {"batches", json::array()}};
  for (const auto& b : report.batches) {
    json batch{{"name", b.name}, {"tasks", json::array()}};
    for (const auto& t : b.tasks) {
      json task{{"seq", t.seq}, {"name", t.name}, {"command", t.command}, {"status", t.status},
                {"reason", t.reason}, {"seconds", seconds_of(task_runtime(t))}, {"attempts", json::array()}};
      for (const auto& a : t.attempts) {
        json attempt{{"attempt", a.number},
                     {"started_at", format_rfc3339(a.started)},
                     {"seconds", seconds_of(a.runtime)},
                     {"outcome", a.outcome},
                     {"exit_code", a.exit_code >= 0 ? json(a.exit_code) : json(nullptr)},
                     {"signal", a.signal ? json(a.signal) : json(nullptr)},
                     {"timed_out", a.timed_out},
                     {"health_check_failed", a.check_failed},
                     {"output_bytes", a.output_bytes},
                     {"log", a.log}};
        if (!a.error.empty()) attempt["error"] = a.error;
        task["attempts"].push_back(std::move(attempt));
      }
      batch["tasks"].push_back(std::move(task));
    }
    root["batches"].push_back(std::move(batch));
  }
  return dump(root);
}

std::string report_junit(const Report& report) {
  const auto c = report.counts();
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<testsuites name=\"" + xml_text(report.project) + "\" tests=\"" + std::to_string(c.total) +
         "\" failures=\"" + std::to_string(c.failed) + "\" errors=\"" + std::to_string(c.interrupted + c.stopped) +
         "\" skipped=\"" + std::to_string(c.skipped + c.done) + "\" time=\"" + fixed(seconds_of(report.elapsed), 3) + "\">\n";
  for (const auto& b : report.batches) {
    const auto bc = report.counts(b);
    Duration time{0};
    WallTime first{};
    for (const auto& t : b.tasks) {
      time += task_runtime(t);
      if (!t.attempts.empty() && (first == WallTime{} || t.attempts.front().started < first))
        first = t.attempts.front().started;
    }
    if (first == WallTime{}) first = report.started;
    // JUnit's timestamp is ISO 8601 without a zone designator.
    std::string stamp = format_rfc3339(first);
    if (!stamp.empty() && stamp.back() == 'Z') stamp.pop_back();
    out += "  <testsuite name=\"" + xml_text(b.name) + "\" tests=\"" + std::to_string(bc.total) +
           "\" failures=\"" + std::to_string(bc.failed) + "\" errors=\"" + std::to_string(bc.interrupted + bc.stopped) +
           "\" skipped=\"" + std::to_string(bc.skipped + bc.done) + "\" time=\"" + fixed(seconds_of(time), 3) + "\" timestamp=\"" +
           stamp + "\" hostname=\"localhost\">\n";
    for (const auto& t : b.tasks) {
      out += "    <testcase name=\"" + xml_text(t.name) + "\" classname=\"" + xml_text(report.project) +
             "\" time=\"" + fixed(seconds_of(task_runtime(t)), 3) + "\"";
      if (t.status == "succeeded") {
        out += "/>\n";
        continue;
      }
      out += ">\n";
      if (t.status == "skipped" || t.status == "done") {
        out += "      <skipped message=\"" + xml_text(t.reason) + "\"/>\n";
      } else if (t.status == "interrupted" || t.status == "stopped") {
        out += "      <error message=\"" + xml_text(t.reason) + "\" type=\"" + t.status + "\">" +
               xml_text("$ " + t.command + "\n" + t.log_tail) + "</error>\n";
      } else {
        out += "      <failure message=\"" + xml_text(t.reason) + "\" type=\"" +
               (t.attempts.empty() || !t.attempts.back().timed_out ? "failure" : "timeout") + "\">" +
               xml_text("$ " + t.command + "\n" + t.log_tail) + "</failure>\n";
      }
      out += "    </testcase>\n";
    }
    out += "  </testsuite>\n";
  }
  out += "</testsuites>\n";
  return out;
}

std::string report_joblog(const Report& report) {
  std::vector<const ReportTask*> ran;
  for (const auto& b : report.batches)
    for (const auto& t : b.tasks)
      if (!t.attempts.empty()) ran.push_back(&t);
  std::sort(ran.begin(), ran.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  std::string out = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";
  for (const auto* t : ran) {
    const auto& a = t->attempts.back();
    char line[128];
    // GNU parallel: %10.3f start, %8.3f runtime; Host ":" is the local machine.
    std::snprintf(line, sizeof line, "%zu\t:\t%10.3f\t%8.3f\t0\t%llu\t%d\t%d\t", t->seq,
                  epoch_seconds(a.started), seconds_of(a.runtime),
                  static_cast<unsigned long long>(a.output_bytes),
                  a.signal ? 0 : (a.exit_code < 0 ? 255 : a.exit_code), a.signal);
    std::string command = t->command;
    std::replace(command.begin(), command.end(), '\n', ' ');
    std::replace(command.begin(), command.end(), '\t', ' ');
    out += line + command + "\n";
  }
  return out;
}

std::string summary_table(const Report& report, std::size_t list_all_up_to) {
  const auto c = report.counts();
  const bool all = c.total <= list_all_up_to;
  std::vector<std::vector<std::string>> rows{{"TASK", "STATUS", "ATTEMPTS", "TIME", "DETAIL"}};
  const bool many_batches = report.batches.size() > 1;
  if (many_batches) rows[0].insert(rows[0].begin(), "BATCH");
  for (const auto& b : report.batches) {
    for (const auto& t : b.tasks) {
      if (!all && (t.status == "succeeded" || t.status == "done")) continue;
      std::vector<std::string> row{t.name, t.status, std::to_string(t.attempts.size()),
                                   t.attempts.empty() ? "-" : format_duration(task_runtime(t)), t.reason};
      if (many_batches) row.insert(row.begin(), b.name);
      rows.push_back(std::move(row));
    }
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::string out;
  if (rows.size() > 1) {
    for (const auto& r : rows) {
      std::string line;
      for (std::size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
  }
  if (!all && c.succeeded) {
    // Appended, not `"(" + std::to_string(...)`: GCC 12 at -O3 reports a false -Wrestrict there.
    out += '(';
    out += std::to_string(c.succeeded);
    out += " succeeded tasks not listed)\n";
  }
  out += std::to_string(c.total) + (c.total == 1 ? " task: " : " tasks: ") + std::to_string(c.succeeded) + " succeeded, " +
         std::to_string(c.failed) + " failed, " + std::to_string(c.skipped) + " skipped" +
         (c.interrupted ? ", " + std::to_string(c.interrupted) + " interrupted" : "") +
         (c.stopped ? ", " + std::to_string(c.stopped) + " stopped" : "") +
         (c.done ? ", " + std::to_string(c.done) + " done in an earlier run" : "") + " in " +
         format_duration(report.elapsed) + (report.interrupted ? " (interrupted)" : "") + "\n";
  return out;
}

}  // namespace batman::cli
