// What the processor has, and the choices made from it: the ISA probes of
// the kernels (cpu_kernels.h: HasAvx512Vnni, HasAvxVnni, EnableAmx), the
// per-vendor prefetch policy (DecodePrefetchBytesFor,
// DecodeL2PrefetchBytesFor) and the default thread count
// (fast_cpu_backend.h: NumPhysicalCores).
#include <cpuid.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/fast_cpu_backend.h"

namespace weft {

bool cpu::HasAvx512Vnni() {
  return __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
}

// AVX-VNNI: CPUID leaf 7, subleaf 1, EAX bit 4.
bool cpu::HasAvxVnni() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;
  return (eax & (1u << 4)) != 0;
}

namespace {
bool IsAmd() {
  static const bool amd = [] {
    unsigned max_leaf, ebx, ecx, edx;
    if (!__get_cpuid(0, &max_leaf, &ebx, &ecx, &edx)) return false;
    char vendor[12];
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::memcmp(vendor, "AuthenticAMD", 12) == 0;
  }();
  return amd;
}
}  // namespace

int64_t cpu::DecodePrefetchBytesFor(bool quantized, bool avx512) {
  return IsAmd() && (avx512 || !quantized) ? kAmdDecodePrefetchBytes
                                           : kDecodePrefetchBytes;
}

bool cpu::L2PolicyFor(bool avx512) { return avx512 && IsAmd(); }

int64_t cpu::DecodeL2PrefetchBytesFor(bool quantized, bool avx512) {
  return quantized && L2PolicyFor(avx512) ? kAmdDecodeL2PrefetchBytes : 0;
}

bool cpu::EnableAmx() {
  static const bool enabled = [] {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    constexpr unsigned kAmxTile = 1u << 24, kAmxInt8 = 1u << 25;
    if ((edx & kAmxTile) == 0 || (edx & kAmxInt8) == 0) return false;
    // Linux keeps the 8 KiB tile state off until a process asks for it.
    constexpr long kArchReqXcompPerm = 0x1023;
    constexpr long kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return enabled;
}

int NumPhysicalCores() {
  // Distinct (package, core) pairs among the CPUs this process may run on.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    return std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  }
  std::set<std::pair<std::string, std::string>> cores;
  int allowed = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    ++allowed;
    const std::string dir =
        absl::StrCat("/sys/devices/system/cpu/cpu", cpu, "/topology/");
    std::ifstream package(dir + "physical_package_id"), core(dir + "core_id");
    std::string p, c;
    if (!(package >> p) || !(core >> c)) return allowed > 0 ? CPU_COUNT(&set) : 1;
    cores.emplace(p, c);
  }
  return std::max<int>(1, static_cast<int>(cores.size()));
}

}  // namespace weft
