#include "kernels/dtype.h"

#include <cmath>

namespace weft {

absl::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kQ8_0: return "Q8_0";
    case DType::kQ4_0: return "Q4_0";
    case DType::kQ4_1: return "Q4_1";
    case DType::kW4: return "W4";
  }
  return "?";
}

int64_t DTypeBlockElements(DType dtype) {
  switch (dtype) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kW4: return kQuantBlockSize;
    default: return 1;
  }
}

int64_t DTypeBlockBytes(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kQ8_0: return sizeof(BlockQ8_0);
    case DType::kQ4_0: return sizeof(BlockQ4_0);
    case DType::kQ4_1:
    case DType::kW4: return sizeof(BlockQ4_1);
  }
  return 0;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 |
             (mantissa & 0x3ff) << 13;
    }
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | mantissa << 13;
  } else {
    bits = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t FloatToHalf(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0);
  }
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                       // below 2^-14: subnormal
    // value = abs_float; subnormal half unit is 2^-24.
    float a;
    std::memcpy(&a, &abs, sizeof(a));
    const float scaled = a * 16777216.0f;  // 2^24, exact
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  // Normal: rebias exponent and round mantissa to 10 bits, nearest even.
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

uint16_t FloatToBf16(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

void DequantizeRow(DType dtype, const void* src, float* dst,
                   int64_t num_elements) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, num_elements * sizeof(float));
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < num_elements; ++i) dst[i] = HalfToFloat(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* b = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < num_elements; ++i) dst[i] = Bf16ToFloat(b[i]);
      return;
    }
    case DType::kQ8_0: {
      const auto* blocks = static_cast<const BlockQ8_0*>(src);
      for (int64_t b = 0; b < num_elements / kQuantBlockSize; ++b) {
        const float d = HalfToFloat(blocks[b].d);
        for (int j = 0; j < kQuantBlockSize; ++j) {
          dst[b * kQuantBlockSize + j] = d * blocks[b].qs[j];
        }
      }
      return;
    }
    case DType::kQ4_0: {
      const auto* blocks = static_cast<const BlockQ4_0*>(src);
      for (int64_t b = 0; b < num_elements / kQuantBlockSize; ++b) {
        const float d = HalfToFloat(blocks[b].d);
        float* out = dst + b * kQuantBlockSize;
        for (int j = 0; j < kQuantBlockSize / 2; ++j) {
          out[j] = d * ((blocks[b].qs[j] & 0x0f) - 8);
          out[j + kQuantBlockSize / 2] = d * ((blocks[b].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::kQ4_1: {
      const auto* blocks = static_cast<const BlockQ4_1*>(src);
      for (int64_t b = 0; b < num_elements / kQuantBlockSize; ++b) {
        const float d = HalfToFloat(blocks[b].d);
        const float m = HalfToFloat(blocks[b].m);
        float* out = dst + b * kQuantBlockSize;
        for (int j = 0; j < kQuantBlockSize / 2; ++j) {
          out[j] = d * (blocks[b].qs[j] & 0x0f) + m;
          out[j + kQuantBlockSize / 2] = d * (blocks[b].qs[j] >> 4) + m;
        }
      }
      return;
    }
    case DType::kW4: {
      const auto* nibbles = static_cast<const uint8_t*>(src);
      const auto* scales =
          reinterpret_cast<const uint16_t*>(nibbles + num_elements / 2);
      for (int64_t b = 0; b < num_elements / kQuantBlockSize; ++b) {
        uint16_t pair[2];
        std::memcpy(pair, scales + 2 * b, sizeof(pair));
        const float d = HalfToFloat(pair[0]);
        const float m = HalfToFloat(pair[1]);
        const uint8_t* qs = nibbles + b * (kQuantBlockSize / 2);
        float* out = dst + b * kQuantBlockSize;
        for (int j = 0; j < kQuantBlockSize / 2; ++j) {
          out[j] = d * (qs[j] & 0x0f) + m;
          out[j + kQuantBlockSize / 2] = d * (qs[j] >> 4) + m;
        }
      }
      return;
    }
  }
}

}  // namespace weft
