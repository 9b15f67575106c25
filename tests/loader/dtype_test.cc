// Checks weft's dtype conversions and dequantization bit for bit against
// references made by independent code (the gguf PyPI package and numpy):
// tests/fixtures/dtype/*.json, written by tools/make_dtype_refs.py.
#include "kernels/dtype.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace weft {
namespace {

nlohmann::json LoadFixture(const std::string& name) {
  const std::string path =
      absl::StrCat(WEFT_SOURCE_DIR, "/tests/fixtures/dtype/", name);
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "missing fixture " << path
                  << " (run tools/make_dtype_refs.py)";
    return nlohmann::json::object();
  }
  return nlohmann::json::parse(in);
}

std::vector<uint8_t> FromHex(const std::string& hex) {
  std::vector<uint8_t> bytes(hex.size() / 2);
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  return bytes;
}

// The little-endian values held in a hex string.
template <typename T>
std::vector<T> ValuesFromHex(const nlohmann::json& hex) {
  const std::vector<uint8_t> bytes = FromHex(hex.get<std::string>());
  EXPECT_EQ(bytes.size() % sizeof(T), 0u);
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

uint32_t Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float FromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// Compares fp32 bit patterns, reporting at most a few mismatches.
void ExpectSameBits(const std::vector<float>& actual,
                    const std::vector<uint32_t>& expected,
                    const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  int mismatches = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (Bits(actual[i]) == expected[i]) continue;
    if (++mismatches <= 5) {
      ADD_FAILURE() << absl::StrFormat(
          "%s[%d]: got %.9g (0x%08x), want %.9g (0x%08x)", what, i, actual[i],
          Bits(actual[i]), FromBits(expected[i]), expected[i]);
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

struct QuantCase {
  DType dtype;
  const char* fixture;
};

class DequantizeRowTest : public testing::TestWithParam<QuantCase> {};

TEST_P(DequantizeRowTest, MatchesGgufReferenceBitForBit) {
  const QuantCase& param = GetParam();
  const nlohmann::json fixture = LoadFixture(param.fixture);
  ASSERT_TRUE(fixture.contains("cases"));
  EXPECT_EQ(fixture["type"].get<std::string>(),
            std::string(DTypeName(param.dtype)));
  int num_cases = 0;
  for (const nlohmann::json& c : fixture["cases"]) {
    const std::string name = c["name"];
    const std::vector<uint8_t> blocks = FromHex(c["blocks"]);
    const std::vector<uint32_t> expected = ValuesFromHex<uint32_t>(c["expected"]);
    const int64_t num_elements = static_cast<int64_t>(expected.size());
    ASSERT_EQ(num_elements % kQuantBlockSize, 0) << name;
    ASSERT_EQ(static_cast<int64_t>(blocks.size()),
              RowBytes(param.dtype, num_elements))
        << name;
    std::vector<float> out(expected.size());
    DequantizeRow(param.dtype, blocks.data(), out.data(), num_elements);
    ExpectSameBits(out, expected, name);

    // A row dequantized one block at a time gives the same values.
    std::vector<float> by_block(expected.size());
    for (int64_t b = 0; b < num_elements / kQuantBlockSize; ++b) {
      DequantizeRow(param.dtype, blocks.data() + b * DTypeBlockBytes(param.dtype),
                    by_block.data() + b * kQuantBlockSize, kQuantBlockSize);
    }
    ExpectSameBits(by_block, expected, name + " by block");
    ++num_cases;
  }
  EXPECT_EQ(num_cases, 3);
}

INSTANTIATE_TEST_SUITE_P(
    Quantized, DequantizeRowTest,
    testing::Values(QuantCase{DType::kQ8_0, "q8_0.json"},
                    QuantCase{DType::kQ4_0, "q4_0.json"},
                    QuantCase{DType::kQ4_1, "q4_1.json"}),
    [](const testing::TestParamInfo<QuantCase>& info) {
      return std::string(DTypeName(info.param.dtype));
    });

TEST(HalfTest, HalfToFloatMatchesNumpy) {
  const nlohmann::json fixture = LoadFixture("f16.json");
  const auto halves = ValuesFromHex<uint16_t>(fixture["to_float"]["half"]);
  const auto expected = ValuesFromHex<uint32_t>(fixture["to_float"]["float"]);
  ASSERT_EQ(halves.size(), expected.size());
  ASSERT_GT(halves.size(), 2048u);  // all subnormals and zeros at least
  std::vector<float> out(halves.size());
  for (size_t i = 0; i < halves.size(); ++i) out[i] = HalfToFloat(halves[i]);
  ExpectSameBits(out, expected, "HalfToFloat");

  std::vector<float> row(halves.size());
  DequantizeRow(DType::kF16, halves.data(), row.data(),
                static_cast<int64_t>(halves.size()));
  ExpectSameBits(row, expected, "DequantizeRow(F16)");
}

TEST(HalfTest, FloatToHalfMatchesNumpyIncludingTiesAndOverflow) {
  const nlohmann::json fixture = LoadFixture("f16.json");
  const auto floats = ValuesFromHex<float>(fixture["from_float"]["float"]);
  const auto expected = ValuesFromHex<uint16_t>(fixture["from_float"]["half"]);
  ASSERT_EQ(floats.size(), expected.size());
  int mismatches = 0;
  for (size_t i = 0; i < floats.size(); ++i) {
    const uint16_t got = FloatToHalf(floats[i]);
    if (got != expected[i] && ++mismatches <= 5) {
      ADD_FAILURE() << absl::StrFormat(
          "FloatToHalf(%.9g = 0x%08x) = 0x%04x, want 0x%04x", floats[i],
          Bits(floats[i]), got, expected[i]);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(HalfTest, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    const float value = HalfToFloat(half);
    const uint16_t back = FloatToHalf(value);
    if ((half & 0x7c00) == 0x7c00 && (half & 0x03ff) != 0) {
      ASSERT_TRUE(std::isnan(value)) << std::hex << h;
      ASSERT_EQ(back & 0xfc00, half & 0xfc00) << std::hex << h;  // sign, NaN
      ASSERT_NE(back & 0x03ff, 0) << std::hex << h;
    } else {
      ASSERT_EQ(back, half) << std::hex << h;
    }
  }
}

TEST(Bf16Test, FloatToBf16MatchesGgufIncludingNanAndTies) {
  const nlohmann::json fixture = LoadFixture("bf16.json");
  const auto floats = ValuesFromHex<float>(fixture["from_float"]["float"]);
  const auto expected = ValuesFromHex<uint16_t>(fixture["from_float"]["bf16"]);
  ASSERT_EQ(floats.size(), expected.size());
  int mismatches = 0;
  for (size_t i = 0; i < floats.size(); ++i) {
    const uint16_t got = FloatToBf16(floats[i]);
    if (got != expected[i] && ++mismatches <= 5) {
      ADD_FAILURE() << absl::StrFormat(
          "FloatToBf16(0x%08x) = 0x%04x, want 0x%04x", Bits(floats[i]), got,
          expected[i]);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Bf16Test, Bf16ToFloatMatchesGguf) {
  const nlohmann::json fixture = LoadFixture("bf16.json");
  const auto bf16 = ValuesFromHex<uint16_t>(fixture["to_float"]["bf16"]);
  const auto expected = ValuesFromHex<uint32_t>(fixture["to_float"]["float"]);
  ASSERT_EQ(bf16.size(), expected.size());
  std::vector<float> out(bf16.size());
  for (size_t i = 0; i < bf16.size(); ++i) out[i] = Bf16ToFloat(bf16[i]);
  ExpectSameBits(out, expected, "Bf16ToFloat");

  std::vector<float> row(bf16.size());
  DequantizeRow(DType::kBF16, bf16.data(), row.data(),
                static_cast<int64_t>(bf16.size()));
  ExpectSameBits(row, expected, "DequantizeRow(BF16)");
}

TEST(DTypeTest, BlockGeometryMatchesGgml) {
  EXPECT_EQ(DTypeBlockBytes(DType::kF32), 4);
  EXPECT_EQ(DTypeBlockBytes(DType::kF16), 2);
  EXPECT_EQ(DTypeBlockBytes(DType::kBF16), 2);
  EXPECT_EQ(DTypeBlockBytes(DType::kQ8_0), 34);
  EXPECT_EQ(DTypeBlockBytes(DType::kQ4_0), 18);
  EXPECT_EQ(DTypeBlockBytes(DType::kQ4_1), 20);
  EXPECT_FALSE(IsQuantized(DType::kBF16));
  EXPECT_TRUE(IsQuantized(DType::kQ4_1));
  EXPECT_EQ(RowBytes(DType::kQ4_1, 576), 18 * 20);
  EXPECT_EQ(RowBytes(DType::kF16, 576), 1152);
}

TEST(DTypeTest, F32RowIsCopiedUnchanged) {
  const std::vector<uint32_t> bits = {0x00000000, 0x80000000, 0x00000001,
                                      0x7f800000, 0x7fc00001, 0x3f800000};
  std::vector<float> out(bits.size());
  DequantizeRow(DType::kF32, bits.data(), out.data(),
                static_cast<int64_t>(bits.size()));
  ExpectSameBits(out, bits, "DequantizeRow(F32)");
}

}  // namespace
}  // namespace weft
