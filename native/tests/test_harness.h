// A minimal test harness (no gtest dependency): CHECK records failures, main() runs registered tests.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace mood_test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
inline int& failures() {
  static int f = 0;
  return f;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};
// Thrown by MOOD_SKIP: the test cannot run here (hardware or build feature missing) and says why.
struct Skipped {
  std::string why;
};

inline int run_all(int argc, char** argv) {
  std::string filter = argc > 1 ? argv[1] : "";
  int passed = 0, failed = 0, skipped = 0;
  for (auto& c : registry()) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    int before = failures();
    try {
      c.fn();
    } catch (const Skipped& s) {
      if (failures() == before) {
        std::printf("[skip] %s: %s\n", c.name, s.why.c_str());
        ++skipped;
        continue;
      }
    } catch (const std::exception& e) {
      std::printf("  exception: %s\n", e.what());
      ++failures();
    }
    bool ok = failures() == before;
    std::printf("%s %s\n", ok ? "[pass]" : "[FAIL]", c.name);
    (ok ? passed : failed)++;
  }
  // The closing line scripts/run-tests.js sums (", N skipped" only when there are any).
  if (skipped)
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  else
    std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace mood_test

#define MOOD_TEST(name)                                                        \
  static void name();                                                          \
  static mood_test::Register name##_reg(#name, name);                          \
  static void name()

// Ends the test as skipped, naming what this machine or build lacks (counted apart from passes).
#define MOOD_SKIP(why) throw mood_test::Skipped{why}

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::printf("  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);              \
      ++mood_test::failures();                                                             \
    }                                                                                      \
  } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                         \
  do {                                                                                                 \
    double _a = (a), _b = (b);                                                                         \
    if (!(std::abs(_a - _b) <= (tol))) {                                                               \
      std::printf("  %s:%d: CHECK_CLOSE failed: %s = %.9g vs %s = %.9g\n", __FILE__, __LINE__, #a, _a, #b, _b); \
      ++mood_test::failures();                                                                         \
    }                                                                                                  \
  } while (0)

// A tolerance check: value <= bound (a derived bound is inclusive). Prints both numbers when it fails,
// and on every call when MOOD_TEST_VERBOSE is set, so that a bound's margin can be read on any CPU.
#define CHECK_WITHIN(value, bound)                                                                           \
  do {                                                                                                   \
    double _v = (value), _b = (bound);                                                                   \
    const bool _ok = _v <= _b;                                                                           \
    if (!_ok || std::getenv("MOOD_TEST_VERBOSE"))                                                        \
      std::printf("  %s:%d: %s%s = %.3g vs bound %s = %.3g\n", __FILE__, __LINE__, _ok ? "" : "CHECK_WITHIN failed: ", \
                  #value, _v, #bound, _b);                                                               \
    if (!_ok) ++mood_test::failures();                                                                   \
  } while (0)
