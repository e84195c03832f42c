// Duplicate mapping keys, found on yaml-cpp's event stream (no node tree is built).
#include "common/yaml.hpp"

#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

namespace batman {
namespace {

class DuplicateKeys final : public YAML::EventHandler {
 public:
  explicit DuplicateKeys(const std::string& source) : source_(source) {}
  std::optional<Error> found;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { item(mark, std::string("~")); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchored_.find(anchor);
    item(mark, it == anchored_.end() ? std::nullopt : std::optional<std::string>(it->second));
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    if (anchor != YAML::NullAnchor) anchored_[anchor] = value;
    item(mark, value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    item(mark, std::nullopt);
    frames_.push_back(Frame{false, path(), {}, true, {}, 0});
  }
  void OnSequenceEnd() override { frames_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    item(mark, std::nullopt);
    frames_.push_back(Frame{true, path(), {}, true, {}, 0});
  }
  void OnMapEnd() override { frames_.pop_back(); }

 private:
  struct Frame {
    bool map;
    std::string prefix;                 // this collection's own key path
    std::map<std::string, int> keys;    // key -> its line (1-based)
    bool at_key;                        // map: the next item is a key
    std::string key;                    // map: the key of the value being read
    std::size_t index;                  // sequence: the next item's index
  };

  // The key path of the item being read now: "programs.web", "batches[0].tasks".
  std::string path() const {
    if (frames_.empty()) return {};
    const Frame& f = frames_.back();
    if (f.map) return f.prefix.empty() ? f.key : f.prefix + "." + f.key;
    return f.prefix + "[" + std::to_string(f.index == 0 ? 0 : f.index - 1) + "]";
  }

  // One node begins (a scalar, or a collection whose events follow): as a key of the
  // mapping being read, it is checked; the position in the parent advances either way.
  void item(const YAML::Mark& mark, std::optional<std::string> key) {
    if (frames_.empty()) return;
    Frame& f = frames_.back();
    if (!f.map) {
      ++f.index;
      return;
    }
    if (!f.at_key) {
      f.at_key = true;  // a value; the next item is a key again
      return;
    }
    f.at_key = false;
    f.key = key.value_or("?");
    if (!key || found) return;
    const int line = mark.line + 1;
    auto [it, inserted] = f.keys.emplace(*key, line);
    if (!inserted) {
      const std::string shown = f.prefix.empty() ? *key : f.prefix + "." + *key;
      found = config_error(source_, line, shown, "duplicate key (first on line " + std::to_string(it->second) + ")");
    }
  }

  const std::string& source_;
  std::vector<Frame> frames_;
  std::map<YAML::anchor_t, std::string> anchored_;
};

}  // namespace

Error config_error(std::string_view source, int line, std::string_view key, std::string_view why) {
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict in chains of
  // `std::string + const char*` (its bug 105329).
  std::string out(source);
  if (line > 0) {
    out += ':';
    out += std::to_string(line);
  }
  out += ": ";
  if (!key.empty()) {
    out += "key '";
    out += key;
    out += "': ";
  }
  out += why;
  return Error{std::move(out), 0};
}

Result<void> check_duplicate_keys(std::string_view yaml_text, const std::string& source) {
  std::istringstream in{std::string(yaml_text)};
  DuplicateKeys handler(source);
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(handler);
  } catch (const YAML::Exception&) {
    // Not valid YAML (or a duplicate found before the error): the reader's own load reports
    // what is wrong with the text.
  }
  if (handler.found) return std::unexpected(*handler.found);
  return {};
}

}  // namespace batman
