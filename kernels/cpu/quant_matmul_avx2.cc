// avx2::QuantMatMul: quant_matmul_avx2.h compiled with -mavx2 -mfma -mf16c.
#define WEFT_QUANT_AVX2_NAMESPACE avx2
#include "kernels/cpu/quant_matmul_avx2.h"
