// avx_vnni::QuantMatMul: quant_matmul_avx2.h compiled with -mavx2 -mfma
// -mf16c -mavxvnni (VPDPBUSD on 256-bit vectors, VEX-encoded).
#ifndef __AVXVNNI__
#error "compile with -mavxvnni (kernels/CMakeLists.txt)"
#endif
#define WEFT_QUANT_AVX2_NAMESPACE avx_vnni
#include "kernels/cpu/quant_matmul_avx2.h"
