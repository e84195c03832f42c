// Durations and sizes as users type them.
#include "common/duration.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace batman {
namespace {

bool parse_number(std::string_view text, double& out) {
  if (text.empty()) return false;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, out);
  return ec == std::errc{} && ptr == end && std::isfinite(out) && out >= 0;
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  const std::string shown(text);
  auto bad = [&] {
    return fail("invalid duration '" + shown + "': use a number with ms, s, m or h (e.g. 1500ms, 30s, 5m, 1h; also d and w)");
  };
  if (text.empty()) return bad();
  double total_ns = 0;
  std::size_t pos = 0;
  bool any = false;
  while (pos < text.size()) {
    std::size_t start = pos;
    while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) ++pos;
    if (pos == start) return bad();
    double value = 0;
    if (!parse_number(text.substr(start, pos - start), value)) return bad();
    std::size_t unit_start = pos;
    while (pos < text.size() && std::isalpha(static_cast<unsigned char>(text[pos]))) ++pos;
    std::string_view unit = text.substr(unit_start, pos - unit_start);
    double scale = 0;
    if (unit.empty()) {
      if (any || pos != text.size()) return bad();
      scale = 1e9;
    } else if (unit == "ns") scale = 1;
    else if (unit == "us") scale = 1e3;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else if (unit == "m") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else if (unit == "d") scale = 86400e9;
    else if (unit == "w") scale = 7 * 86400e9;
    else return bad();
    total_ns += value * scale;
    any = true;
  }
  if (total_ns > 1e18) return fail("duration '" + shown + "' is too long", ERANGE);
  return Duration(static_cast<long long>(std::llround(total_ns)));
}

Result<Duration> parse_age(std::string_view text) {
  if (!text.empty() && text.find_first_not_of("0123456789.") == std::string_view::npos)
    return fail("'" + std::string(text) + "' has no unit: add a unit: s, m, h, d, w (e.g. " + std::string(text) + "d)");
  auto d = parse_duration(text);
  if (!d) return fail("invalid age '" + std::string(text) + "': add a unit: s, m, h, d, w (e.g. 30m, 12h, 7d, 2w)");
  return d;
}

std::string format_duration(Duration d) {
  using namespace std::chrono;
  long long ms = duration_cast<milliseconds>(d).count();
  char buf[64];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", ms);
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", ms / 60'000, (ms / 1000) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", ms / 3'600'000, (ms / 60'000) % 60);
  }
  return buf;
}

std::string format_uptime(Duration d) {
  long long s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 0) s = 0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

Result<std::uint64_t> parse_size(std::string_view text) {
  const std::string shown(text);
  auto bad = [&] {
    return fail("invalid size '" + shown + "': use a number with an optional K, M, G or T suffix (e.g. 512M, 2G, 50MB)");
  };
  std::size_t pos = 0;
  while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) ++pos;
  double value = 0;
  if (!parse_number(text.substr(0, pos), value)) return bad();
  std::string unit(text.substr(pos));
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 1;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB") scale = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TB" || unit == "TIB") scale = 1024.0 * 1024 * 1024 * 1024;
  else return bad();
  double bytes = value * scale;
  if (bytes > 9e18) return fail("size '" + shown + "' is too large", ERANGE);
  return static_cast<std::uint64_t>(std::llround(bytes));
}

Result<long long> parse_integer(std::string_view text, std::string_view what, long long min,
                                long long max) {
  long long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || value < min ||
      value > max) {
    return fail(std::string(what) + ": '" + std::string(text) + "' is not a whole number from " +
                std::to_string(min) + " to " + std::to_string(max));
  }
  return value;
}

}  // namespace batman
