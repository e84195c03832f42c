// The dashboard's request checks, pure so they are unit-tested: Host (DNS rebinding), Origin
// (cross-site requests), the per-server token that POST actions carry (CSRF), and access
// tokens (--token) compared in constant time.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace batman::dashboard {

// How the server is reached: its port, and whether it listens on loopback only.
struct Listening {
  std::string bind;  // as given to --bind: 127.0.0.1, ::1, 0.0.0.0, 192.0.2.7, localhost
  int port = 0;
  bool loopback = true;
};

bool is_loopback_address(std::string_view bind);

// A Host header a browser sends only to this server: on loopback, 127.0.0.1, localhost or
// [::1] with our port (a DNS-rebinding page's Host is its own name, and is refused). A
// non-loopback server (which requires --token) takes any host name with our port.
bool host_allowed(std::string_view host, const Listening& l);
// An Origin header (absent: not a browser's cross-site request) that is this very server:
// "http://" + the request's own Host.
bool origin_allowed(std::string_view origin, std::string_view host);

// Equal, in time that does not depend on where the two differ.
bool constant_time_equal(std::string_view a, std::string_view b);
// A cookie's value from a Cookie header ("a=1; batman_token=xyz").
std::optional<std::string> cookie_value(std::string_view header, std::string_view name);
// The token of "Authorization: Bearer TOKEN".
std::optional<std::string> bearer_token(std::string_view header);

// 32 random bytes as 64 hex digits (getrandom).
std::string random_token();

}  // namespace batman::dashboard
