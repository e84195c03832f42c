#pragma once
// System calls without the C library: the result is the kernel's (-errno on failure), errno
// is never touched and no PLT entry is bound. For code that runs beside batman's thread, in
// batman's memory and with its thread pointer (the early child of isolation/namespaces.cpp
// and the mounts it makes there: glibc's wrappers would write batman's errno behind its
// back), and for batman-init, which has no C library at all (isolation/init_main.cpp).
// Elsewhere than x86-64 and arm64 the C library's syscall(3) stands in (kRaw is false there,
// and nothing may then run beside batman).
#if !defined(__x86_64__) && !defined(__aarch64__)
#include <cerrno>
#include <unistd.h>
#endif

namespace batman::isolation::raw {

#if defined(__x86_64__)
constexpr bool kRaw = true;
inline long call(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0) {
  long ret;
  register long r10 asm("r10") = a4;
  register long r8 asm("r8") = a5;
  asm volatile("syscall" : "=a"(ret) : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
constexpr bool kRaw = true;
inline long call(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0) {
  register long x8 asm("x8") = n;
  register long x0 asm("x0") = a1;
  register long x1 asm("x1") = a2;
  register long x2 asm("x2") = a3;
  register long x3 asm("x3") = a4;
  register long x4 asm("x4") = a5;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
}
#else
constexpr bool kRaw = false;
inline long call(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0) {
  const long ret = syscall(n, a1, a2, a3, a4, a5);
  return ret < 0 ? -errno : ret;
}
#endif

// Pointers as the kernel's arguments.
template <typename T>
long arg(T* pointer) {
  return reinterpret_cast<long>(pointer);
}

}  // namespace batman::isolation::raw
