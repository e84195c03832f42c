// Signal names: "TERM", "SIGTERM", "15" <-> numbers.
#pragma once
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace batman {

Result<int> parse_signal(std::string_view text);
std::string signal_name(int sig);  // "TERM"

}  // namespace batman
