// supervisord's INI config (supervisord.conf) read into the same runner::SupervisorConfig the
// YAML reader makes: [program:x], [group:x], [include] files=, %(...)s expansions,
// [supervisord] logfile=, [unix_http_server] file= (where supervisorctl connects) and
// [inet_http_server] port= (with Basic auth only). Values are checked by the YAML reader
// itself (one voice): "FILE:LINE: [program:x] key: why".
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "src/taskmaster/supervisor.hpp"

namespace batman::cli {

// How a config file is read: by its syntax (a first line that opens a [section] is INI), or
// as the user said (--format).
enum class ConfigFormat { Auto, Yaml, Supervisord };
bool looks_like_supervisord(std::string_view text);

// Warnings about what was read and not applied (keys batman does not implement), one line
// each, "FILE:LINE: [program:x] key: not implemented, ignored".
using ConfigWarnings = std::vector<std::string>;

// Parse supervisord INI text (`source` names it in messages; `base_dir` is %(here)s and where
// relative paths and [include] globs are from).
Result<runner::SupervisorConfig> parse_supervisord_config(std::string_view text, const std::string& source,
                                                          const std::string& base_dir, ConfigWarnings* warnings);

// Read a config file in either format (YAML as load_supervisor_config does).
Result<runner::SupervisorConfig> load_any_config(const std::string& path, ConfigFormat format,
                                                 ConfigWarnings* warnings);

// supervisord's dict_of_key_value_pairs: `A="x, y",B=2` (quotes as the shell's).
Result<std::vector<std::pair<std::string, std::string>>> parse_environment_pairs(std::string_view text);

}  // namespace batman::cli
