// What yaml-cpp does not check: a mapping with the same key twice. yaml-cpp keeps both and
// `node["key"]` finds the first, so a typo'd copy further down was silently ignored.
#pragma once
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace batman {

// Refuse the first mapping (in the first document of `yaml_text`) that has a key twice:
// "SOURCE:LINE: key 'a.b[0].c': duplicate key (first on line N)", LINE being the second
// one's. Keys are compared as the scalars they are (`1` and `"1"` are one key, as yaml-cpp's
// lookup treats them); a mapping or sequence used as a key is not compared. Aliases are not
// expanded, so an alias bomb costs no more than its text. A document yaml-cpp cannot parse
// is not this check's to report: that gives success, and the reader's own load says why.
Result<void> check_duplicate_keys(std::string_view yaml_text, const std::string& source);

}  // namespace batman
