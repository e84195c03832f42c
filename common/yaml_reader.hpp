// One reader for the YAML files users give batman: isolation profiles (SPEC §7), taskmaster
// configs (§9) and batch files (§10). Each typed value has one way to be wrong, said one way
// in all three: "FILE:LINE: key 'a.b': why" (common/yaml.hpp's config_error):
//   unknown key (known: a, b, c)            a key the format does not have
//   expected a string | true or false | a mapping | a list of strings | a, b or c | ...
//                                           a value of the wrong type or shape
//   expected a whole number from 1 to 10000 not a number at all
//   300 is out of range (0 to 255)          a number (or duration, size) outside its range
//   expected a duration such as 1500ms, 30s, 5m or 1h | a size such as 512M, 50MB or 0 |
//   a signal such as TERM, ...              a duration, size or signal that does not parse
//   missing: HINT                           a required key left out
//   duplicate key (first on line N)         a key twice in one mapping
// The formats' own checks (an unknown system call, a dependency cycle...) use Value::error,
// so they share the shape if not the words.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "common/yaml.hpp"

namespace batman::yaml {

class Value;

// One document being read: its name in messages, and the parse.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}
  const std::string& source() const { return source_; }

  // Parse TEXT, refuse a key given twice, and call WALK with the top level (key ""), which must
  // be a mapping (an empty document is not). yaml-cpp's
  // exceptions (invalid YAML, or a shape WALK did not expect) become one message with the line.
  template <class F>
  auto read(std::string_view text, F&& walk) const -> decltype(walk(std::declval<const Value&>()));

  Error error(int line, std::string_view key, std::string_view why) const {
    return config_error(source_, line, key, why);
  }

 private:
  Result<YAML::Node> load(std::string_view text) const;
  Error exception(const YAML::Exception& e) const;

  std::string source_;
};

// A value at a key path ("programs.web.numprocs"), present or not: what the formats read.
class Value {
 public:
  // NODE at KEY; LINE is said for it when NODE has none (absent: its mapping's line).
  Value(const Reader& reader, const YAML::Node& node, std::string key, int line);

  // Present in the document; a key with an empty value (null) is present.
  explicit operator bool() const { return present_; }
  // Absent, or present as null (`key:`, `key: ~`).
  bool is_null() const { return !present_ || node_.IsNull(); }
  bool is_map() const { return present_ && node_.IsMap(); }
  bool is_list() const { return present_ && node_.IsSequence(); }
  bool is_scalar() const { return present_ && node_.IsScalar(); }
  // Entries of a mapping, items of a list; 0 otherwise.
  std::size_t count() const { return is_map() || is_list() ? node_.size() : 0; }
  const std::string& key() const { return key_; }
  // The line the value is on (1-based); an absent key's is its mapping's.
  int line() const { return line_; }
  // The scalar as written (empty when it is not a scalar).
  std::string scalar() const { return is_scalar() ? node_.Scalar() : std::string(); }

  // NAME of this mapping, keyed "KEY.NAME"; absent when this is no mapping or lacks NAME.
  Value operator[](std::string_view name) const;
  // The items of this list. Scalar items keep the list's key (`key 'seccomp.deny'`);
  // `indexed` keys them "KEY[0]", "KEY[1]"... (lists of mappings). Empty when not a list.
  std::vector<Value> items(bool indexed = false) const;
  // The entries of this mapping in file order: each key's name and its value ("KEY.NAME").
  struct Entry;
  Result<std::vector<Entry>> entries() const;

  // The mistakes: `error` is the shape every other one takes.
  std::unexpected<Error> error(std::string_view why) const;
  std::unexpected<Error> expected(std::string_view what) const;   // "expected WHAT"
  std::unexpected<Error> out_of_range(std::string_view range) const;  // "V is out of range (RANGE)"
  std::unexpected<Error> missing(std::string_view hint) const;     // "missing: HINT"

  // A mapping whose keys are all in ALLOWED (a null value is an empty mapping).
  Result<void> keys(std::initializer_list<std::string_view> allowed) const;
  Result<void> keys(std::span<const std::string_view> allowed) const;
  Result<std::string> text() const;
  // A string with more than blanks in it: a command, a path.
  Result<std::string> nonblank() const;
  // true/yes/on, false/no/off.
  Result<bool> flag() const;
  Result<long long> integer(long long min, long long max) const;
  Result<double> number(double min, double max = std::numeric_limits<double>::infinity()) const;
  // "1500ms", "30s", "5m", "1h"; a bare number is seconds.
  Result<Duration> duration() const;
  // "512M", "50MB", "0": bytes.
  Result<std::uint64_t> size() const;
  // "TERM", "SIGTERM", "15".
  Result<int> signal() const;
  // One of WORDS, returned as written.
  Result<std::string> choice(std::span<const std::string_view> words) const;
  Result<std::string> choice(std::initializer_list<std::string_view> words) const {
    return choice(std::span<const std::string_view>(words.begin(), words.size()));
  }
  // A list of strings; null is an empty list.
  Result<std::vector<std::string>> strings() const;
  // An environment: NAME: value, NAME non-empty without '=' (or NUL); a null value is "".
  Result<std::map<std::string, std::string>> variables() const;

 private:
  const Reader* reader_;
  YAML::Node node_;  // a null node when absent (yaml-cpp's absent nodes throw when asked)
  std::string key_;
  int line_;
  bool present_;
};

struct Value::Entry {
  std::string name;
  Value at_name;  // the key itself, for a mistake in the name
  Value value;
};

// "a.b": KEY under PARENT.
std::string join_key(std::string_view parent, std::string_view key);

template <class F>
auto Reader::read(std::string_view text, F&& walk) const -> decltype(walk(std::declval<const Value&>())) {
  try {
    auto root = load(text);
    if (!root) return std::unexpected(std::move(root).error());
    const Value top(*this, *root, "", 0);
    if (!top.is_map()) return top.expected("a mapping of keys");
    return walk(top);
  } catch (const YAML::Exception& e) {
    return std::unexpected(exception(e));
  }
}

}  // namespace batman::yaml
