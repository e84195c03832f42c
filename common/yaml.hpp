// The one shape of a mistake in a YAML file batman reads (profiles, taskmaster configs, batch
// files), and what yaml-cpp does not check: a mapping with the same key twice. yaml-cpp keeps
// both and `node["key"]` finds the first, so a typo'd copy further down was silently ignored.
// Reading typed values is common/yaml_reader.hpp's.
#pragma once
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace batman {

// "SOURCE:LINE: key 'KEY': WHY"; ":LINE" is left out when `line` is 0 (not known), "key
// 'KEY': " when KEY is empty (the document itself).
Error config_error(std::string_view source, int line, std::string_view key, std::string_view why);

// Refuse the first mapping (in the first document of `yaml_text`) that has a key twice:
// "SOURCE:LINE: key 'a.b[0].c': duplicate key (first on line N)", LINE being the second
// one's. Keys are compared as the scalars they are (`1` and `"1"` are one key, as yaml-cpp's
// lookup treats them); a mapping or sequence used as a key is not compared. Aliases are not
// expanded, so an alias bomb costs no more than its text. A document yaml-cpp cannot parse
// is not this check's to report: that gives success, and the reader's own load says why.
Result<void> check_duplicate_keys(std::string_view yaml_text, const std::string& source);

}  // namespace batman
