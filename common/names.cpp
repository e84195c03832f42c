// Name validation and run-id generation.
#include "common/names.hpp"

#include <sys/random.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace batman {

Result<void> validate_name(std::string_view name, std::string_view what) {
  auto ok_first = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  auto ok_rest = [&](char c) { return ok_first(c) || c == '.' || c == '_' || c == '-'; };
  bool valid = !name.empty() && name.size() <= 64 && ok_first(name[0]) && name != "." && name != "..";
  for (std::size_t i = 1; valid && i < name.size(); ++i) valid = ok_rest(name[i]);
  if (!valid) {
    std::string shown = printable(name.substr(0, 80));
    return fail("invalid " + std::string(what) + " name '" + shown +
                "': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  return {};
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      out += ch;
      continue;
    }
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case 0x1b: out += "\\e"; break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\x";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      }
    }
  }
  return out;
}

std::string new_run_id() {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  unsigned char rnd[3] = {0, 0, 0};
  if (getrandom(rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) {
    auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    rnd[0] = static_cast<unsigned char>(t);
    rnd[1] = static_cast<unsigned char>(t >> 8);
    rnd[2] = static_cast<unsigned char>(t >> 16);
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02d-%02x%02x%02x", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd[0], rnd[1], rnd[2]);
  return buf;
}

}  // namespace batman
