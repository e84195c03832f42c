// Errors as values: an errno plus a context chain, so a failure reads
// "mount /tmp: Operation not permitted" all the way up (after crun's libcrun/error.c).
#pragma once
#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace batman {

struct Error {
  std::string message;  // what failed, with the thing it failed on
  int code = 0;         // errno, or 0 when the failure is not a system call's

  // "context: message" — used when passing an error up a layer.
  Error wrap(const std::string& context) const& { return Error{context + ": " + message, code}; }
  Error wrap(const std::string& context) && {
    return Error{context + ": " + std::move(message), code};
  }
  std::string what() const { return message; }
};

template <class T>
using Result = std::expected<T, Error>;

// A failed system call: "what: strerror(errno)".
inline std::unexpected<Error> sys_error(const std::string& what, int err = errno) {
  return std::unexpected(Error{what + ": " + std::strerror(err), err});
}
// A failure that is not a system call's.
inline std::unexpected<Error> fail(std::string message, int code = 0) {
  return std::unexpected(Error{std::move(message), code});
}

// The value of a Result, or the error returned from the enclosing function (which returns
// any Result): `auto n = BATMAN_TRY(parse(x));`, `BATMAN_TRY(check(y));` for Result<void>.
// A GCC/Clang statement expression, as the Linux kernel's and systemd's helpers are.
#define BATMAN_TRY(...)                                                              \
  __extension__({                                                                    \
    auto&& batman_try_result_ = (__VA_ARGS__);                                       \
    if (!batman_try_result_) return std::unexpected(std::move(batman_try_result_).error()); \
    ::batman::detail::take_value(std::move(batman_try_result_));                     \
  })

namespace detail {
template <class T, class E>
T take_value(std::expected<T, E>&& r) {
  return std::move(*r);
}
template <class E>
void take_value(std::expected<void, E>&&) {}
}  // namespace detail

}  // namespace batman
