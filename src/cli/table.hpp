// Aligned text tables for ps and profiles list: columns as wide as their widest cell, or
// squeezed into a terminal's width with "…" marking what was cut.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace batman::cli {

// Columns of a cell as a terminal shows it (UTF-8: one per code point).
std::size_t display_width(std::string_view text);
// `text` cut to `width` columns, its last one "…" when something was cut.
std::string truncate_to(std::string_view text, std::size_t width);

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Every cell whole, columns two spaces apart (the last one not padded).
  std::string render() const;
  // Lines of at most `width` columns: the last column gets what is left; while that is less
  // than 16, the `shrinkable` columns give way first (down to 8 each).
  std::string render(std::size_t width, const std::vector<std::size_t>& shrinkable) const;

 private:
  std::string render_with(const std::vector<std::size_t>& widths) const;
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace batman::cli
