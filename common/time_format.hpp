// Wall-clock time as RFC 3339 UTC ("2026-11-22T01:41:25.123Z") for state files and reports.
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace batman {

using WallTime = std::chrono::system_clock::time_point;
std::string format_rfc3339(WallTime t);
std::optional<WallTime> parse_rfc3339(std::string_view text);

}  // namespace batman
