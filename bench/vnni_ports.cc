// Which vector operations share execution units with VPDPBUSD on this
// processor: the time of 12 independent 512-bit VPDPBUSD chains per
// iteration alone and with 4 (2 for VCVTPH2PS) independent operations of
// one kind added. An operation that runs on other units adds nothing; one
// that competes adds about a VPDPBUSD's time each. The batched quantized
// matmul's epilogue (kernels/cpu/avx512_common.h, BlockEpilogue) is shaped
// by the answer. Then each 512-bit multiply kind alone (integer, BF16 and
// FMA): how many a cycle, whatever the kind. Standalone, not built by CMake (it needs -march flags for
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

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Times kIterations of: 12 VPDPBUSD chains, then EXTRA (statements on
// locals declared by SETUP, each kept in a register by an asm barrier).
#define WEFT_VNNI_CASE(name, setup, extra)                                     \
  {                                                                          \
    __m512i acc[12];                                                         \
    __m512i b = _mm512_set1_epi8(3), c = _mm512_set1_epi8(5);                \
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);              \
    setup;                                                                   \
    const auto start = std::chrono::steady_clock::now();                     \
    for (long k = 0; k < kIterations; ++k) {                                 \
      _Pragma("GCC unroll 12") for (int i = 0; i < 12; ++i) {                \
        acc[i] = _mm512_dpbusd_epi32(acc[i], b, c);                          \
      }                                                                      \
      extra;                                                                 \
      asm volatile("" : "+v"(b), "+v"(c));                                   \
    }                                                                        \
    const double ns = Seconds(start) / kIterations * 1e9;                    \
    alignas(64) int lanes[16];                                               \
    int sum = 0;                                                             \
    for (int i = 0; i < 12; ++i) {                                           \
      _mm512_store_si512(lanes, acc[i]);                                     \
      sum += lanes[0];                                                       \
    }                                                                        \
    std::printf("  %-22s %.3f%s\n", name, ns, sum == 42 ? " " : "");        \
  }

#define WEFT_KEEP4(a, b, c, d) asm volatile("" : "+v"(a), "+v"(b), "+v"(c), "+v"(d))

// WEFT_VNNI_CASE with 4 independent float chains x = op(x, 0.5).
#define WEFT_FLOAT4_CASE(name, op)                                       \
  WEFT_VNNI_CASE(name,                                                   \
                 __m512 f0 = _mm512_set1_ps(1); __m512 f1 = f0;          \
                 __m512 f2 = f0; __m512 f3 = f0;                         \
                 const __m512 h = _mm512_set1_ps(0.5f),                  \
                 f0 = op(f0, h); f1 = op(f1, h); f2 = op(f2, h);         \
                 f3 = op(f3, h); WEFT_KEEP4(f0, f1, f2, f3))

// ns per iteration of 12 independent chains of one 512-bit multiply kind
// alone (VAR: the chains' type, INIT: their start value, OP: acc[i] from
// acc[i] and the operands a, b of type ARG set to ARG_INIT).
#define WEFT_ALONE_CASE(name, var, init, arg, arg_init, op)                     \
  {                                                                          \
    var acc[12];                                                             \
    for (int i = 0; i < 12; ++i) acc[i] = init;                              \
    arg a = arg_init, b = arg_init;                                          \
    const auto start = std::chrono::steady_clock::now();                     \
    for (long k = 0; k < kIterations; ++k) {                                 \
      _Pragma("GCC unroll 12") for (int i = 0; i < 12; ++i) acc[i] = op;     \
      asm volatile("" : "+v"(a), "+v"(b));                                   \
    }                                                                        \
    const double ns = Seconds(start) / kIterations * 1e9;                    \
    for (int i = 0; i < 12; ++i) asm volatile("" : : "v"(acc[i]));           \
    std::printf("  %-22s %.3f\n", name, ns);                                \
  }

}  // namespace

int main() {
  for (int rep = 0; rep < 2; ++rep) {
    std::printf("ns per iteration of 12 chains of one 512-bit kind alone:\n");
    WEFT_ALONE_CASE("VPDPBUSD", __m512i, _mm512_set1_epi32(i), __m512i,
                    _mm512_set1_epi8(3), _mm512_dpbusd_epi32(acc[i], a, b));
    WEFT_ALONE_CASE("VPDPWSSD", __m512i, _mm512_set1_epi32(i), __m512i,
                    _mm512_set1_epi16(3), _mm512_dpwssd_epi32(acc[i], a, b));
    WEFT_ALONE_CASE("VPMADD52LUQ", __m512i, _mm512_set1_epi64(i), __m512i,
                    _mm512_set1_epi64(3), _mm512_madd52lo_epu64(acc[i], a, b));
    WEFT_ALONE_CASE("VPMULLW", __m512i, _mm512_set1_epi16(i), __m512i,
                    _mm512_set1_epi16(3), _mm512_mullo_epi16(acc[i], a));
    WEFT_ALONE_CASE("VDPBF16PS", __m512, _mm512_set1_ps(i), __m512bh,
                    (__m512bh)_mm512_set1_epi16(0x3f80), _mm512_dpbf16_ps(acc[i], a, b));
    WEFT_ALONE_CASE("VFMADD231PS", __m512, _mm512_set1_ps(i), __m512,
                    _mm512_set1_ps(0.5f), _mm512_fmadd_ps(acc[i], a, b));
  }
  for (int rep = 0; rep < 3; ++rep) {
    std::printf("ns per iteration of 12 VPDPBUSD zmm:\n");
    WEFT_VNNI_CASE("alone", , );
    WEFT_FLOAT4_CASE("+ 4 VFMADD231PS",
                     [](__m512 x, __m512 h) { return _mm512_fmadd_ps(x, h, h); });
    WEFT_FLOAT4_CASE("+ 4 VMULPS", [](__m512 x, __m512 h) { return _mm512_mul_ps(x, h); });
    WEFT_FLOAT4_CASE("+ 4 VADDPS", [](__m512 x, __m512 h) { return _mm512_add_ps(x, h); });
    WEFT_VNNI_CASE("+ 4 VCVTDQ2PS",
                   __m512 f0 = _mm512_set1_ps(1); __m512 f1 = f0; __m512 f2 = f0;
                   __m512 f3 = f0; const __m512i x = _mm512_set1_epi32(rep),
                   f0 = _mm512_cvtepi32_ps(_mm512_add_epi32(x, acc[0]));
                   f1 = _mm512_cvtepi32_ps(acc[1]); f2 = _mm512_cvtepi32_ps(acc[2]);
                   f3 = _mm512_cvtepi32_ps(acc[3]); WEFT_KEEP4(f0, f1, f2, f3));
    WEFT_VNNI_CASE("+ 4 VPSLLD/VPSUBD",
                   __m512i n0 = _mm512_set1_epi32(1); __m512i n1 = n0; __m512i n2 = n0;
                   __m512i n3 = n0,
                   n0 = _mm512_slli_epi32(n0, 1); n1 = _mm512_sub_epi32(n1, n0);
                   n2 = _mm512_slli_epi32(n2, 3); n3 = _mm512_add_epi32(n3, n2);
                   WEFT_KEEP4(n0, n1, n2, n3));
    WEFT_VNNI_CASE("+ 4 VPBROADCASTD mem",
                   alignas(64) int memory[64] = {1}; __m512i n0; __m512i n1; __m512i n2;
                   __m512i n3,
                   n0 = _mm512_set1_epi32(memory[k & 31]);
                   n1 = _mm512_set1_epi32(memory[(k + 1) & 31]);
                   n2 = _mm512_set1_epi32(memory[(k + 2) & 31]);
                   n3 = _mm512_set1_epi32(memory[(k + 3) & 31]); WEFT_KEEP4(n0, n1, n2, n3));
    WEFT_VNNI_CASE("+ 2 VCVTPH2PS",
                   __m256i h = _mm256_set1_epi16(0x3c00); __m512 f0; __m512 f1,
                   f0 = _mm512_cvtph_ps(h); f1 = _mm512_cvtph_ps(_mm256_add_epi16(h, h));
                   asm volatile("" : "+v"(f0), "+v"(f1), "+v"(h)));
  }
}
