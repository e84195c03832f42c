// RFC 3339 timestamps in UTC with milliseconds.
#include "common/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace batman {

std::string format_rfc3339(WallTime t) {
  using namespace std::chrono;
  auto secs = time_point_cast<seconds>(t);
  if (secs > t) secs -= seconds(1);
  auto ms = duration_cast<milliseconds>(t - secs).count();
  std::time_t tt = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  // Digit by digit: snprintf's parsing of seven conversions costs more than the rest of
  // this, and a batch task stamps two or three of these.
  const int year = tm.tm_year + 1900;
  if (year < 0 || year > 9999) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ", year, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(ms));
    return buf;
  }
  std::string out = "0000-00-00T00:00:00.000Z";
  auto put = [&out](std::size_t at, int value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
  };
  put(0, year, 4);
  put(5, tm.tm_mon + 1, 2);
  put(8, tm.tm_mday, 2);
  put(11, tm.tm_hour, 2);
  put(14, tm.tm_min, 2);
  put(17, tm.tm_sec, 2);
  put(20, static_cast<int>(ms), 3);
  return out;
}

std::optional<WallTime> parse_rfc3339(std::string_view text) {
  std::tm tm{};
  int ms = 0;
  std::string s(text);
  int year, mon, day, hour, min, sec;
  int n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour, &min, &sec, &n) != 6)
    return std::nullopt;
  if (static_cast<std::size_t>(n) < s.size() && s[n] == '.') {
    int digits = 0;
    std::size_t i = n + 1;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (digits < 3) ms = ms * 10 + (s[i] - '0');
      ++digits;
      ++i;
    }
    for (; digits < 3; ++digits) ms *= 10;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  std::time_t tt = timegm(&tm);
  if (tt == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(tt) + std::chrono::milliseconds(ms);
}

}  // namespace batman
