// The page the dashboard serves (src/dashboard/web/: index.html, app.js, app.css), compiled
// into the binary by embed.py: nothing is fetched from elsewhere at run time.
#pragma once
#include <optional>
#include <string_view>

namespace batman::dashboard {

struct WebAsset {
  std::string_view path;          // "/app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
};

// The asset served at `path` ("/" is index.html), or nullopt.
std::optional<WebAsset> find_web_asset(std::string_view path);

}  // namespace batman::dashboard
