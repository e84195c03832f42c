// Parsing and printing of durations ("1500ms", "30s", "5m", "1h") and sizes ("512M", "50MB").
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/error.hpp"

namespace batman {

// "1500ms", "30s", "5m", "1h", "2d", "1w", "1h30m", a bare number is seconds ("2.5" = 2500ms).
Result<Duration> parse_duration(std::string_view text);
// An age as `clean --older-than` takes it: as parse_duration, but a bare number is refused
// ("7" was once taken as seconds where days were meant): "add a unit: s, m, h, d, w".
Result<Duration> parse_age(std::string_view text);
// "1.5s", "250ms", "2m05s": short and exact enough for messages and tables.
std::string format_duration(Duration d);
// "0:01:05" as supervisorctl prints uptimes.
std::string format_uptime(Duration d);
// "512M", "2G", "50MB", "1024", "1KiB": bytes, binary multiples (K = 1024).
Result<std::uint64_t> parse_size(std::string_view text);
// A positive integer in [min, max], with the option's name in the error.
Result<long long> parse_integer(std::string_view text, std::string_view what, long long min,
                                long long max);

}  // namespace batman
