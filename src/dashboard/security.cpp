// Host, Origin and token checks (see security.hpp).
#include "src/dashboard/security.hpp"

#include <arpa/inet.h>
#include <sys/random.h>

#include <cstdio>

namespace batman::dashboard {

bool is_loopback_address(std::string_view bind) {
  if (bind == "localhost" || bind == "::1") return true;
  in_addr v4{};
  const std::string text(bind);
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return false;
}

namespace {

// "name:port" or "[v6]:port" into its name and port text (no port: "").
std::pair<std::string_view, std::string_view> split_host(std::string_view host) {
  if (host.starts_with("[")) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return {host, {}};
    std::string_view rest = host.substr(close + 1);
    return {host.substr(0, close + 1), rest.starts_with(":") ? rest.substr(1) : std::string_view{}};
  }
  const auto colon = host.rfind(':');
  if (colon == std::string_view::npos) return {host, {}};
  return {host.substr(0, colon), host.substr(colon + 1)};
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace

bool host_allowed(std::string_view host, const Listening& l) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host)
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '@' || c == '\\') return false;
  auto [name, port] = split_host(host);
  const std::string ours = std::to_string(l.port);
  if (port.empty() ? l.port != 80 : port != ours) return false;
  if (name.empty()) return false;
  if (!l.loopback) return true;
  if (iequal(name, "localhost") || name == "[::1]") return true;
  in_addr v4{};
  const std::string text(name);
  return ::inet_pton(AF_INET, text.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

bool origin_allowed(std::string_view origin, std::string_view host) {
  if (origin.empty()) return true;
  const std::string expected = "http://" + std::string(host);
  return iequal(origin, expected);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // The length is not secret (tokens have one length); the content is compared whole.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = a.size() < b.size() ? a.size() : b.size();
  for (std::size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  volatile unsigned char result = diff;
  return result == 0;
}

std::optional<std::string> cookie_value(std::string_view header, std::string_view name) {
  std::size_t at = 0;
  while (at < header.size()) {
    auto end = header.find(';', at);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = header.substr(at, end - at);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (auto eq = part.find('='); eq != std::string_view::npos && part.substr(0, eq) == name)
      return std::string(part.substr(eq + 1));
    at = end + 1;
  }
  return std::nullopt;
}

std::optional<std::string> bearer_token(std::string_view header) {
  if (header.size() < 7 || !iequal(header.substr(0, 7), "bearer ")) return std::nullopt;
  std::string_view token = header.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return std::string(token);
}

std::string random_token() {
  unsigned char bytes[32];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  std::string out;
  char hex[3];
  for (unsigned char b : bytes) {
    std::snprintf(hex, sizeof hex, "%02x", b);
    out += hex;
  }
  return out;
}

}  // namespace batman::dashboard
