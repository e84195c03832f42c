// Project, instance and run-id names: the one rule that keeps every path inside $BATMAN_HOME.
#pragma once
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace batman {

// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ and not "." or "..". `what` is "project" or "ID".
Result<void> validate_name(std::string_view name, std::string_view what);
// YYYYMMDDTHHMMSS-xxxxxx (UTC, six random hex digits).
std::string new_run_id();
// `text` with every control character written as an escape (\n, \r, \t, \e, \xNN), so a
// name or path from the user echoed in a message keeps it one line and cannot drive the
// terminal. Everything else (UTF-8 included) is kept as it is.
std::string printable(std::string_view text);

}  // namespace batman
