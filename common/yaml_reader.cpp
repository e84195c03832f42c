// Typed values from yaml-cpp nodes, each with its one message (see yaml_reader.hpp).
#include "common/yaml_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/duration.hpp"
#include "common/signals.hpp"

namespace batman::yaml {
namespace {

int line_of(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  const auto mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

// "0.01", "4096": a bound as a person writes it.
std::string shown(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// "0 to 255", "at least 0": what out_of_range says; `what` and "from" make the expected type.
std::string bounds(const std::string& min, const std::string& max) {
  if (max.empty()) return "at least " + min;
  std::string out = min;
  out += " to ";
  out += max;
  return out;
}

std::string kind_within(std::string_view what, const std::string& min, const std::string& max) {
  std::string out(what);
  out += max.empty() ? " of " : " from ";
  out += bounds(min, max);
  return out;
}

bool whole_scalar(std::string_view s, auto& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc{} && end == s.data() + s.size();
}

}  // namespace

std::string join_key(std::string_view parent, std::string_view key) {
  std::string out(parent);
  if (!out.empty()) out += '.';
  out += key;
  return out;
}

Result<YAML::Node> Reader::load(std::string_view text) const {
  YAML::Node root = YAML::Load(std::string(text));
  BATMAN_TRY(check_duplicate_keys(text, source_));
  return root;
}

Error Reader::exception(const YAML::Exception& e) const {
  std::string why = "invalid YAML: ";
  why += e.msg;
  return error(e.mark.line >= 0 ? e.mark.line + 1 : 0, "", why);
}

// yaml-cpp's Node::operator= assigns into the node (and throws on an absent one): nodes are
// only ever copy-constructed here.
Value::Value(const Reader& reader, const YAML::Node& node, std::string key, int line)
    : reader_(&reader),
      node_(node.IsDefined() ? node : YAML::Node()),
      key_(std::move(key)),
      line_(line),
      present_(node.IsDefined()) {
  if (const int own = present_ ? line_of(node_) : 0; own > 0) line_ = own;
}

Value Value::operator[](std::string_view name) const {
  std::string key = join_key(key_, name);
  if (!is_map()) return Value(*reader_, YAML::Node(YAML::NodeType::Undefined), std::move(key), line_);
  const YAML::Node& map = node_;
  return Value(*reader_, map[std::string(name)], std::move(key), line_);
}

std::vector<Value> Value::items(bool indexed) const {
  std::vector<Value> out;
  if (!present_ || !node_.IsSequence()) return out;
  std::size_t i = 0;
  for (const auto& item : node_) {
    std::string key = key_;
    if (indexed) {
      key += '[';
      key += std::to_string(i++);
      key += ']';
    }
    out.emplace_back(*reader_, item, std::move(key), line_);
  }
  return out;
}

Result<std::vector<Value::Entry>> Value::entries() const {
  std::vector<Entry> out;
  if (!is_map()) return out;
  for (const auto& item : node_) {
    Value name(*reader_, item.first, key_, line_);
    if (!item.first.IsScalar()) return name.expected("a plain word as the key");
    std::string key = join_key(key_, item.first.Scalar());
    out.push_back(Entry{item.first.Scalar(), Value(*reader_, item.first, key, line_),
                        Value(*reader_, item.second, key, line_)});
  }
  return out;
}

std::unexpected<Error> Value::error(std::string_view why) const {
  return std::unexpected(reader_->error(line_, key_, why));
}

std::unexpected<Error> Value::expected(std::string_view what) const {
  std::string why = "expected ";
  why += what;
  return error(why);
}

std::unexpected<Error> Value::out_of_range(std::string_view range) const {
  std::string why = scalar();
  why += " is out of range (";
  why += range;
  why += ')';
  return error(why);
}

std::unexpected<Error> Value::missing(std::string_view hint) const {
  std::string why = "missing: ";
  why += hint;
  return error(why);
}

Result<void> Value::keys(std::initializer_list<std::string_view> allowed) const {
  return keys(std::span<const std::string_view>(allowed.begin(), allowed.size()));
}

Result<void> Value::keys(std::span<const std::string_view> allowed) const {
  if (is_null()) return {};
  if (!node_.IsMap()) return expected("a mapping");
  for (const auto& entry : BATMAN_TRY(entries())) {
    if (std::find(allowed.begin(), allowed.end(), entry.name) != allowed.end()) continue;
    std::vector<std::string_view> sorted(allowed.begin(), allowed.end());
    std::sort(sorted.begin(), sorted.end());
    std::string why = "unknown key (known: ";
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      if (i > 0) why += ", ";
      why += sorted[i];
    }
    why += ')';
    return entry.at_name.error(why);
  }
  return {};
}

Result<std::string> Value::text() const {
  if (!is_scalar()) return expected("a string");
  return node_.Scalar();
}

Result<std::string> Value::nonblank() const {
  auto s = BATMAN_TRY(text());
  if (s.find_first_not_of(" \t\r\n") == std::string::npos) return expected("a non-blank string");
  return s;
}

Result<bool> Value::flag() const {
  const std::string s = scalar();
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  return expected("true or false");
}

Result<long long> Value::integer(long long min, long long max) const {
  long long n = 0;
  const std::string s = scalar();
  const std::string low = std::to_string(min), high = std::to_string(max);
  if (!whole_scalar(s, n)) {
    // Digits beyond long long are a number out of range, not a wrong type.
    const bool digits = s.find_first_of("0123456789") != std::string::npos &&
                        s.find_first_not_of("-0123456789") == std::string::npos;
    if (!digits) return expected(kind_within("a whole number", low, high));
    return out_of_range(bounds(low, high));
  }
  if (n < min || n > max) return out_of_range(bounds(low, high));
  return n;
}

Result<double> Value::number(double min, double max) const {
  double n = 0;
  const std::string low = shown(min), high = std::isinf(max) ? std::string() : shown(max);
  if (!whole_scalar(scalar(), n) || !std::isfinite(n)) return expected(kind_within("a number", low, high));
  if (n < min || n > max) return out_of_range(bounds(low, high));
  return n;
}

Result<Duration> Value::duration() const {
  auto d = parse_duration(scalar());
  if (d) return *d;
  if (d.error().code == ERANGE) return out_of_range("too long");
  return expected("a duration such as 1500ms, 30s, 5m or 1h");
}

Result<std::uint64_t> Value::size() const {
  auto n = parse_size(scalar());
  if (n) return *n;
  if (n.error().code == ERANGE) return out_of_range("too large");
  return expected("a size such as 512M, 50MB or 0");
}

Result<int> Value::signal() const {
  if (auto sig = parse_signal(scalar())) return *sig;
  return expected("a signal such as TERM, INT, QUIT, HUP, KILL, USR1, USR2 or a number");
}

Result<std::string> Value::choice(std::span<const std::string_view> words) const {
  const std::string s = scalar();
  if (is_scalar() && std::find(words.begin(), words.end(), s) != words.end()) return s;
  std::string what;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) what += i + 1 == words.size() ? " or " : ", ";
    what += words[i];
  }
  return expected(what);
}

Result<std::vector<std::string>> Value::strings() const {
  std::vector<std::string> out;
  if (is_null()) return out;
  if (!node_.IsSequence()) return expected("a list of strings");
  for (const auto& item : items()) {
    if (!item.is_scalar()) return item.expected("a list of strings");
    out.push_back(item.scalar());
  }
  return out;
}

Result<std::map<std::string, std::string>> Value::variables() const {
  std::map<std::string, std::string> out;
  if (is_null()) return out;
  if (!node_.IsMap()) return expected("a mapping of NAME: value");
  for (const auto& entry : BATMAN_TRY(entries())) {
    const auto& name = entry.name;
    if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos) {
      std::string why = "'";
      why += name;
      why += "' is not a variable name (non-empty, without '=')";
      return Value(*reader_, entry.at_name.node_, key_, line_).error(why);
    }
    if (entry.value.is_null()) {
      out[name] = "";
    } else {
      out[name] = BATMAN_TRY(entry.value.text());
    }
  }
  return out;
}

}  // namespace batman::yaml
