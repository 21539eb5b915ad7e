#include "dispatch.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace fastblur {

// Each level's table (variant.cpp, compiled once per level); FASTBLUR_WITH_<LEVEL> says
// which levels CMake compiled.
#define FASTBLUR_DECLARE_VARIANT(level) \
  namespace level {                     \
  const Variant& variant();             \
  }
#ifdef FASTBLUR_WITH_NATIVE
FASTBLUR_DECLARE_VARIANT(native)
#endif
#ifdef FASTBLUR_WITH_AVX512
FASTBLUR_DECLARE_VARIANT(avx512)
#endif
#ifdef FASTBLUR_WITH_AVX2
FASTBLUR_DECLARE_VARIANT(avx2)
#endif
#ifdef FASTBLUR_WITH_SSE4
FASTBLUR_DECLARE_VARIANT(sse4)
#endif
#ifdef FASTBLUR_WITH_BASELINE
FASTBLUR_DECLARE_VARIANT(baseline)
#endif
#undef FASTBLUR_DECLARE_VARIANT

namespace {

// Values FASTBLUR_SIMD accepts besides "" and "auto", best level first.
const char* const kLevels[] = {"avx512", "avx2", "sse4", "baseline"};

const Variant* active = nullptr;

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

const std::vector<const Variant*>& compiled_variants() {
  static const std::vector<const Variant*> variants = {
#ifdef FASTBLUR_WITH_NATIVE
      &native::variant(),
#endif
#ifdef FASTBLUR_WITH_AVX512
      &avx512::variant(),
#endif
#ifdef FASTBLUR_WITH_AVX2
      &avx2::variant(),
#endif
#ifdef FASTBLUR_WITH_SSE4
      &sse4::variant(),
#endif
#ifdef FASTBLUR_WITH_BASELINE
      &baseline::variant(),
#endif
  };
  return variants;
}

bool cpu_supports(const std::string& name) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  // The flags each level is compiled with (CMakeLists.txt); the AVX checks include the
  // operating system's support for the wider registers.
  __builtin_cpu_init();
  if (name == "sse4")
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (name == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  // The compiler's default target, or the build machine's (-march=native).
  return name == "baseline" || name == "native";
}

std::pair<std::string, std::string> choose_variant(const std::string& requested,
                                                   const std::vector<std::string>& compiled,
                                                   const std::vector<std::string>& runnable) {
  if (runnable.empty()) throw std::invalid_argument("no compiled level runs on this CPU");
  std::string level;
  for (char c : requested)
    if (!std::isspace(static_cast<unsigned char>(c)))
      level += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (level.empty() || level == "auto") return {runnable.front(), ""};
  if (std::find(std::begin(kLevels), std::end(kLevels), level) == std::end(kLevels))
    throw std::invalid_argument("FASTBLUR_SIMD must be one of auto, avx512, avx2, sse4, "
                                "baseline; got '" + requested + "'");
  if (level == "baseline") level = compiled.back();
  if (std::find(runnable.begin(), runnable.end(), level) != runnable.end()) return {level, ""};
  const bool built = std::find(compiled.begin(), compiled.end(), level) != compiled.end();
  return {runnable.front(),
          "FASTBLUR_SIMD=" + requested + ": " +
              (built ? "this CPU cannot run the " + level + " kernels"
                     : "this build has no " + level + " kernels (it has " + join(compiled) + ")") +
              "; running the " + runnable.front() + " kernels"};
}

const Variant& active_variant() { return active ? *active : *compiled_variants().back(); }

void set_active_variant(const Variant& variant) { active = &variant; }

template <>
const Kernels<float>& kernels<float>() {
  return active_variant().f32;
}

template <>
const Kernels<double>& kernels<double>() {
  return active_variant().f64;
}

}  // namespace fastblur
