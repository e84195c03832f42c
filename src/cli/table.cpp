// Aligned text tables, fitted to a width.
#include "src/cli/table.hpp"

#include <algorithm>

namespace batman::cli {

std::size_t display_width(std::string_view text) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    // A colour (ESC [ ... m, cli::coloured) takes no column.
    if (text[i] == '\033' && i + 1 < text.size() && text[i + 1] == '[') {
      i += 2;
      while (i < text.size() && !(text[i] >= '@' && text[i] <= '~')) ++i;
      continue;
    }
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++n;  // not a continuation byte
  }
  return n;
}

std::string truncate_to(std::string_view text, std::size_t width) {
  if (display_width(text) <= width) return std::string(text);
  if (width == 0) return {};
  std::string out;
  std::size_t columns = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) {
      if (columns == width - 1) break;
      ++columns;
    }
    out += text[i];
  }
  return out + "…";
}

std::string Table::render() const {
  std::vector<std::size_t> widths(headers_.size(), 0);
  for (std::size_t i = 0; i < headers_.size(); ++i) widths[i] = display_width(headers_[i]);
  for (const auto& row : rows_)
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], display_width(row[i]));
  return render_with(widths);
}

std::string Table::render(std::size_t width, const std::vector<std::size_t>& shrinkable) const {
  std::vector<std::size_t> widths(headers_.size(), 0);
  for (std::size_t i = 0; i < headers_.size(); ++i) widths[i] = display_width(headers_[i]);
  for (const auto& row : rows_)
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], display_width(row[i]));
  if (widths.empty()) return render_with(widths);
  auto used_before_last = [&] {
    std::size_t used = 0;
    for (std::size_t i = 0; i + 1 < widths.size(); ++i) used += widths[i] + 2;
    return used;
  };
  constexpr std::size_t kMinLast = 16, kMinShrunk = 8;
  // Shrink the shrinkable columns (widest first) until the last column has its minimum.
  while (used_before_last() + kMinLast > width) {
    std::size_t* widest = nullptr;
    for (std::size_t c : shrinkable)
      if (c + 1 < widths.size() && widths[c] > kMinShrunk && (!widest || widths[c] > *widest)) widest = &widths[c];
    if (!widest) break;
    --*widest;
  }
  // The last column takes what is left, however little (a line never passes `width` while
  // the other columns fit in it).
  const std::size_t used = used_before_last();
  widths.back() = std::min(widths.back(), width > used + 4 ? width - used : std::size_t{4});
  return render_with(widths);
}

std::string Table::render_with(const std::vector<std::size_t>& widths) const {
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t i = 0; i < widths.size(); ++i) {
      std::string cell = truncate_to(i < cells.size() ? cells[i] : std::string(), widths[i]);
      if (i + 1 == widths.size()) {
        text += cell;
      } else {
        text += cell + std::string(widths[i] - display_width(cell) + 2, ' ');
      }
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
  return out;
}

}  // namespace batman::cli
