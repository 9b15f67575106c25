// Which vector operations share execution units with VPDPBUSD on this
// processor: the time of 12 independent 512-bit VPDPBUSD chains per
// iteration alone and with 4 (2 for VCVTPH2PS) independent operations of
// one kind added. An operation that runs on other units adds nothing; one
// that competes adds about a VPDPBUSD's time each. The batched quantized
// matmul's epilogue (kernels/cpu/avx512_common.h, BlockEpilogue) is shaped
// by the answer. Standalone, not built by CMake (it needs -march flags for
// the processor it measures):
//
//   g++ -O3 -march=native bench/vnni_ports.cc -o /tmp/vnni_ports && /tmp/vnni_ports
//
// Results: bench/README.md, "Quantized matmul kernels".
#include <immintrin.h>

#include <chrono>
#include <cstdio>

namespace {

constexpr long kIterations = 20000000;

template <typename Body>
double NanosPerIteration(Body body) {
  const auto start = std::chrono::steady_clock::now();
  body();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return seconds / kIterations * 1e9;
}

// 12 VPDPBUSD chains plus `extra(k)` per iteration; the asm barriers keep
// the compiler from hoisting or folding the operands.
template <typename Extra>
double Run(Extra extra) {
  return NanosPerIteration([&] {
    __m512i acc[12];
    __m512i b = _mm512_set1_epi8(3), c = _mm512_set1_epi8(5);
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
    for (long k = 0; k < kIterations; ++k) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], b, c);
      extra(k);
      asm volatile("" : "+v"(b), "+v"(c));
    }
    alignas(64) int lanes[16];
    int sum = 0;
    for (int i = 0; i < 12; ++i) {
      _mm512_store_si512(lanes, acc[i]);
      sum += lanes[0];
    }
    if (sum == 42) std::puts("");
  });
}

}  // namespace

int main() {
  for (int rep = 0; rep < 3; ++rep) {
    __m512 f[4];
    __m512i n[4];
    for (int i = 0; i < 4; ++i) {
      f[i] = _mm512_set1_ps(1.0f + i);
      n[i] = _mm512_set1_epi32(i);
    }
    const __m512 half = _mm512_set1_ps(0.5f);
    alignas(64) int memory[64] = {1};
    __m256i h = _mm256_set1_epi16(0x3c00);
    auto barrier = [&] {
      asm volatile("" : "+v"(f[0]), "+v"(f[1]), "+v"(f[2]), "+v"(f[3]));
      asm volatile("" : "+v"(n[0]), "+v"(n[1]), "+v"(n[2]), "+v"(n[3]), "+v"(h));
    };
    std::printf("ns per iteration of 12 VPDPBUSD zmm:\n");
    std::printf("  alone                 %.3f\n", Run([&](long) {}));
    std::printf("  + 4 VFMADD231PS       %.3f\n", Run([&](long) {
      for (int i = 0; i < 4; ++i) f[i] = _mm512_fmadd_ps(f[i], half, half);
      barrier();
    }));
    std::printf("  + 4 VMULPS            %.3f\n", Run([&](long) {
      for (int i = 0; i < 4; ++i) f[i] = _mm512_mul_ps(f[i], half);
      barrier();
    }));
    std::printf("  + 4 VADDPS            %.3f\n", Run([&](long) {
      for (int i = 0; i < 4; ++i) f[i] = _mm512_add_ps(f[i], half);
      barrier();
    }));
    std::printf("  + 4 VCVTDQ2PS         %.3f\n", Run([&](long) {
      for (int i = 0; i < 4; ++i) f[i] = _mm512_cvtepi32_ps(_mm512_castps_si512(f[i]));
      barrier();
    }));
    std::printf("  + 4 VPSLLD/VPSUBD     %.3f\n", Run([&](long) {
      n[0] = _mm512_slli_epi32(n[0], 1);
      n[1] = _mm512_sub_epi32(n[1], n[0]);
      n[2] = _mm512_slli_epi32(n[2], 3);
      n[3] = _mm512_add_epi32(n[3], n[2]);
      barrier();
    }));
    std::printf("  + 4 VPBROADCASTD mem  %.3f\n", Run([&](long k) {
      for (int i = 0; i < 4; ++i) n[i] = _mm512_set1_epi32(memory[(k + i) & 31]);
      barrier();
    }));
    std::printf("  + 2 VCVTPH2PS         %.3f\n", Run([&](long) {
      f[0] = _mm512_cvtph_ps(h);
      f[1] = _mm512_cvtph_ps(_mm256_add_epi16(h, h));
      barrier();
    }));
  }
}
