#pragma once
// RUNNEL_ASSERT is on in every build: a broken invariant is a programmer
// error, so we log file, line, expression and a backtrace, then abort.
// RUNNEL_DASSERT is for checks too costly for release builds.

namespace runnel {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* func);
}  // namespace runnel

#define RUNNEL_ASSERT(cond)                                                  \
  do {                                                                       \
    if (__builtin_expect(!(cond), 0)) {                                      \
      ::runnel::assert_fail(#cond, __FILE__, __LINE__, __PRETTY_FUNCTION__); \
    }                                                                        \
  } while (0)

#ifdef NDEBUG
#define RUNNEL_DASSERT(cond) \
  do {                       \
    (void)sizeof(cond);      \
  } while (0)
#else
#define RUNNEL_DASSERT(cond) RUNNEL_ASSERT(cond)
#endif
