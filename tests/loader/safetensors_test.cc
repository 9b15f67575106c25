// SafetensorsModel on single-file and sharded model directories written
// here, and on malformed variants of them.
#include "runtime/loader/safetensors.h"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using test::StatusIs;

struct Tensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;
};

// `num_bytes` bytes of a recognisable pattern, distinct per `seed`.
std::string PatternBytes(size_t num_bytes, int seed) {
  std::string bytes(num_bytes, '\0');
  for (size_t i = 0; i < num_bytes; ++i) {
    bytes[i] = static_cast<char>((i * 13 + seed * 29 + 5) & 0xff);
  }
  return bytes;
}

// A safetensors file: the header length, `header` padded with spaces to a
// multiple of 8 bytes (as the safetensors library writes it), then `data`.
std::string FileBytes(const std::string& header, const std::string& data) {
  std::string padded = header;
  padded.resize((padded.size() + 7) / 8 * 8, ' ');
  std::string bytes(8, '\0');
  const uint64_t length = padded.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(length >> (8 * i));
  return bytes + padded + data;
}

// The header describing `tensors` laid out back to back, in the given order.
nlohmann::ordered_json Header(const std::vector<Tensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  return header;
}

std::string Data(const std::vector<Tensor>& tensors) {
  std::string data;
  for (const Tensor& t : tensors) data += t.data;
  return data;
}

std::string SafetensorsBytes(const std::vector<Tensor>& tensors) {
  return FileBytes(Header(tensors).dump(), Data(tensors));
}

std::vector<Tensor> SmallTensors() {
  return {
      {"model.embed_tokens.weight", "BF16", {4, 3}, PatternBytes(24, 1)},
      {"model.norm.weight", "F32", {3}, PatternBytes(12, 2)},
      {"lm_head.weight", "F16", {4, 3}, PatternBytes(24, 3)},
  };
}

std::string TensorBytes(const HostTensor& t) {
  return std::string(reinterpret_cast<const char*>(t.data), t.num_bytes);
}

class SafetensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeScratchDir("weft_safetensors_test");
  }
  void TearDown() override { test::RemoveScratchDir(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good()) << path;
    return path;
  }

  absl::StatusOr<std::unique_ptr<SafetensorsModel>> Open() {
    return SafetensorsModel::Open(dir_.string());
  }

  // A single model.safetensors with `header` (raw JSON text) and `data`.
  absl::StatusOr<std::unique_ptr<SafetensorsModel>> OpenSingle(
      const std::string& header, const std::string& data) {
    Write("model.safetensors", FileBytes(header, data));
    return Open();
  }

  // A single model.safetensors whose only tensor has `entry`, with `data`.
  absl::StatusOr<std::unique_ptr<SafetensorsModel>> OpenEntry(
      const nlohmann::json& entry, size_t data_bytes) {
    return OpenSingle(nlohmann::json{{"w", entry}}.dump(),
                      PatternBytes(data_bytes, 7));
  }

  // Two shards and an index assigning each tensor to its shard.
  void WriteShardedModel() {
    const std::vector<Tensor> all = SmallTensors();
    Write("model-00001-of-00002.safetensors",
          SafetensorsBytes({all[0], all[1]}));
    Write("model-00002-of-00002.safetensors", SafetensorsBytes({all[2]}));
    WriteIndex({{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                {"model.norm.weight", "model-00001-of-00002.safetensors"},
                {"lm_head.weight", "model-00002-of-00002.safetensors"}});
  }

  void WriteIndex(const nlohmann::json& weight_map) {
    Write("model.safetensors.index.json",
          nlohmann::json{{"metadata", {{"total_size", 60}}},
                         {"weight_map", weight_map}}
              .dump(2));
  }

  std::filesystem::path dir_;
};

// --- well-formed models -----------------------------------------------------

TEST_F(SafetensorsTest, ReadsSingleFile) {
  const std::vector<Tensor> written = SmallTensors();
  Write("model.safetensors", SafetensorsBytes(written));
  auto model = Open();
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ((*model)->tensors().size(), 3u);

  const HostTensor* embed = (*model)->FindTensor("model.embed_tokens.weight");
  const HostTensor* norm = (*model)->FindTensor("model.norm.weight");
  const HostTensor* head = (*model)->FindTensor("lm_head.weight");
  ASSERT_TRUE(embed && norm && head);
  EXPECT_EQ((*model)->FindTensor("missing"), nullptr);
  EXPECT_EQ(embed->dtype, DType::kBF16);
  EXPECT_THAT(embed->shape, ElementsAre(4, 3));
  EXPECT_EQ(embed->num_bytes, 24u);
  EXPECT_EQ(norm->dtype, DType::kF32);
  EXPECT_THAT(norm->shape, ElementsAre(3));
  EXPECT_EQ(head->dtype, DType::kF16);
  EXPECT_EQ(TensorBytes(*embed), written[0].data);
  EXPECT_EQ(TensorBytes(*norm), written[1].data);
  EXPECT_EQ(TensorBytes(*head), written[2].data);
  // Back to back in the buffer, in file order.
  EXPECT_EQ(norm->data, embed->data + 24);
  EXPECT_EQ(&(*model)->tensors()[0], embed);
  EXPECT_EQ(&(*model)->tensors()[2], head);
}

TEST_F(SafetensorsTest, OrdersTensorsByPositionNotByHeaderOrder) {
  // Header keys in the opposite order to the data.
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
      R"("c":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  auto model = OpenSingle(header, PatternBytes(12, 1));
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::string> names;
  for (const HostTensor& t : (*model)->tensors()) names.push_back(t.name);
  EXPECT_THAT(names, ElementsAre("c", "b", "a"));
}

TEST_F(SafetensorsTest, ReadsScalarsEmptyTensorsAndMetadataFreeHeaders) {
  const std::string header =
      R"({"scalar":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("empty":{"dtype":"F16","shape":[0,5],"data_offsets":[4,4]},)"
      R"("v":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}})";
  auto model = OpenSingle(header, PatternBytes(8, 1));
  ASSERT_TRUE(model.ok()) << model.status();
  const HostTensor* scalar = (*model)->FindTensor("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_THAT(scalar->shape, IsEmpty());
  EXPECT_EQ(scalar->num_elements(), 1);
  const HostTensor* empty = (*model)->FindTensor("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_THAT(empty->shape, ElementsAre(0, 5));
  EXPECT_EQ(empty->num_bytes, 0u);
}

TEST_F(SafetensorsTest, ReadsShardedModelFromIndex) {
  WriteShardedModel();
  auto model = Open();
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<Tensor> written = SmallTensors();
  ASSERT_EQ((*model)->tensors().size(), 3u);
  // Shards in name order, tensors in file order within each.
  std::vector<std::string> names;
  for (const HostTensor& t : (*model)->tensors()) names.push_back(t.name);
  EXPECT_THAT(names, ElementsAre("model.embed_tokens.weight",
                                 "model.norm.weight", "lm_head.weight"));
  for (const Tensor& w : written) {
    const HostTensor* t = (*model)->FindTensor(w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(TensorBytes(*t), w.data) << w.name;
  }
  EXPECT_THAT((*model)->FindTensor("lm_head.weight")->shape, ElementsAre(4, 3));
}

TEST_F(SafetensorsTest, IgnoresShardTensorsTheIndexDoesNotList) {
  WriteShardedModel();
  std::vector<Tensor> second = {SmallTensors()[2],
                                {"extra", "F32", {2}, PatternBytes(8, 9)}};
  Write("model-00002-of-00002.safetensors", SafetensorsBytes(second));
  auto model = Open();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->tensors().size(), 3u);
  EXPECT_EQ((*model)->FindTensor("extra"), nullptr);
}

TEST_F(SafetensorsTest, PrefersSingleFileOverIndex) {
  WriteShardedModel();
  Write("model.safetensors",
        SafetensorsBytes({{"only", "F32", {1}, PatternBytes(4, 1)}}));
  auto model = Open();
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ((*model)->tensors().size(), 1u);
  EXPECT_EQ((*model)->tensors()[0].name, "only");
}

// Checkpoints saved by transformers (tests/fixtures/README.md): 2 layers of 9
// weights (+3 QKV biases each in Qwen2), embeddings, final norm, and
// lm_head unless tied.
TEST(SafetensorsFixtureTest, ReadsCheckpointsWrittenByTransformers) {
  const std::string fixtures = absl::StrCat(WEFT_SOURCE_DIR, "/tests/fixtures");
  if (!std::filesystem::exists(fixtures + "/tiny_llama/model.safetensors") ||
      !std::filesystem::exists(fixtures + "/tiny_qwen2/model.safetensors")) {
    GTEST_SKIP() << "tiny model fixtures not found under " << fixtures
                 << " (tools/make_tiny_models.py)";
  }
  auto llama = SafetensorsModel::Open(fixtures + "/tiny_llama");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ((*llama)->tensors().size(), 21u);
  for (const HostTensor& t : (*llama)->tensors()) {
    EXPECT_EQ(t.dtype, DType::kF32) << t.name;
  }
  const HostTensor* head = (*llama)->FindTensor("lm_head.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_THAT(head->shape, ElementsAre(469, 64));
  EXPECT_EQ(head->num_bytes, 469u * 64 * 4);

  auto qwen2 = SafetensorsModel::Open(fixtures + "/tiny_qwen2");
  ASSERT_TRUE(qwen2.ok()) << qwen2.status();
  EXPECT_EQ((*qwen2)->tensors().size(), 26u);
  for (const HostTensor& t : (*qwen2)->tensors()) {
    EXPECT_EQ(t.dtype, DType::kBF16) << t.name;
  }
  EXPECT_EQ((*qwen2)->FindTensor("lm_head.weight"), nullptr);  // tied
  const HostTensor* embed = (*qwen2)->FindTensor("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_THAT(embed->shape, ElementsAre(384, 64));
  const HostTensor* bias =
      (*qwen2)->FindTensor("model.layers.1.self_attn.q_proj.bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_THAT(bias->shape, ElementsAre(64));
}

// --- missing files ----------------------------------------------------------

TEST_F(SafetensorsTest, RejectsMissingDirectoryAndEmptyDirectory) {
  EXPECT_THAT(SafetensorsModel::Open((dir_ / "nope").string()),
              StatusIs(absl::StatusCode::kNotFound, "does not exist"));
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kNotFound,
                               "holds neither model.safetensors nor "
                               "model.safetensors.index.json"));
}

TEST_F(SafetensorsTest, RejectsMissingShard) {
  WriteShardedModel();
  std::filesystem::remove(dir_ / "model-00002-of-00002.safetensors");
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kNotFound,
                               "shard 'model-00002-of-00002.safetensors' "
                               "named by"));
}

TEST_F(SafetensorsTest, RejectsTensorMissingFromItsShard) {
  WriteShardedModel();
  WriteIndex({{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
              {"model.norm.weight", "model-00002-of-00002.safetensors"},
              {"lm_head.weight", "model-00002-of-00002.safetensors"}});
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "tensor 'model.norm.weight' is listed in"));
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "model-00002-of-00002.safetensors, which does "
                               "not hold it"));
}

// --- malformed files --------------------------------------------------------

TEST_F(SafetensorsTest, RejectsFileTooShortForHeaderLength) {
  Write("model.safetensors", std::string("\x10\0\0", 3));
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "too short for the header length"));
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEndOfFile) {
  std::string bytes = SafetensorsBytes(SmallTensors());
  bytes[0] = static_cast<char>(0xf0);  // header length 240 + ...
  bytes[1] = static_cast<char>(0x0f);  // ... 15 * 256 = 4080 bytes
  Write("model.safetensors", bytes);
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "header length 4080 runs past the end of the "
                               "file"));
}

TEST_F(SafetensorsTest, RejectsAbsurdHeaderLength) {
  std::string bytes = SafetensorsBytes(SmallTensors());
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(0xff);
  Write("model.safetensors", bytes);
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "header length 18446744073709551615 exceeds "
                               "the limit"));
}

TEST_F(SafetensorsTest, ErrorsNameTheFile) {
  const std::string path = Write("model.safetensors", "short");
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument, path));
}

TEST_F(SafetensorsTest, RejectsBadJson) {
  EXPECT_THAT(OpenSingle(R"({"w": {"dtype": "F32",)", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, "bad JSON in"));
  EXPECT_THAT(OpenSingle("", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, "bad JSON in"));
  EXPECT_THAT(OpenSingle("{\"\xff\": 1}", ""),  // invalid UTF-8
              StatusIs(absl::StatusCode::kInvalidArgument, "bad JSON in"));
  EXPECT_THAT(OpenSingle("[1, 2]", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "header is not a JSON object"));
}

TEST_F(SafetensorsTest, RejectsDataOffsetsOutOfRange) {
  EXPECT_THAT(
      OpenEntry({{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}},
                4),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "tensor 'w' has data_offsets [0, 8] outside the data buffer "
               "of 4 bytes"));
  EXPECT_THAT(
      OpenEntry({{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {8, 4}}},
                8),
      StatusIs(absl::StatusCode::kInvalidArgument, "outside the data buffer"));
  EXPECT_THAT(OpenEntry({{"dtype", "F32"},
                         {"shape", {1}},
                         {"data_offsets",
                          {std::numeric_limits<uint64_t>::max() - 3,
                           std::numeric_limits<uint64_t>::max()}}},
                        4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "outside the data buffer"));
}

TEST_F(SafetensorsTest, RejectsSizeShapeMismatch) {
  EXPECT_THAT(
      OpenEntry({{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 12}}},
                12),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "tensor 'w' has 12 bytes but its shape and F32 need 24"));
  EXPECT_THAT(
      OpenEntry({{"dtype", "BF16"}, {"shape", {3}}, {"data_offsets", {0, 12}}},
                12),
      StatusIs(absl::StatusCode::kInvalidArgument, "BF16 need 6"));
}

TEST_F(SafetensorsTest, RejectsUnsupportedDtypes) {
  for (const char* dtype : {"I64", "F64", "F8_E4M3", "BOOL", "Q9"}) {
    EXPECT_THAT(
        OpenEntry({{"dtype", dtype}, {"shape", {1}}, {"data_offsets", {0, 8}}},
                  8),
        StatusIs(absl::StatusCode::kUnimplemented,
                 absl::StrCat("tensor 'w' has dtype ", dtype,
                              "; weft supports F32, F16 and BF16")));
  }
}

TEST_F(SafetensorsTest, RejectsDuplicateTensorNames) {
  const std::string header =
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
      R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_THAT(OpenSingle(header, PatternBytes(8, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "duplicate tensor 'w'"));
  // A key repeated inside an entry is a duplicate key, not a tensor.
  const std::string inner =
      R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_THAT(OpenSingle(inner, PatternBytes(4, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "duplicate key 'dtype'"));
}

TEST_F(SafetensorsTest, RejectsDuplicateNamesInIndex) {
  WriteShardedModel();
  Write("model.safetensors.index.json",
        R"({"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors",)"
        R"( "lm_head.weight": "model-00001-of-00002.safetensors"}})");
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "duplicate key 'lm_head.weight'"));
}

TEST_F(SafetensorsTest, RejectsBadShapes) {
  const auto entry = [](nlohmann::json shape) {
    return nlohmann::json{
        {"dtype", "F32"}, {"shape", shape}, {"data_offsets", {0, 4}}};
  };
  EXPECT_THAT(OpenEntry(entry({-1}), 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensor 'w' has absurd dimension -1"));
  EXPECT_THAT(OpenEntry(entry({1.5}), 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "absurd dimension 1.5"));
  EXPECT_THAT(OpenEntry(entry({"1"}), 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "absurd dimension \"1\""));
  EXPECT_THAT(OpenEntry(entry({uint64_t{1} << 41}), 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "absurd dimension 2199023255552"));
  // Each dimension is plausible, their product is not (and would overflow
  // 64 bits).
  EXPECT_THAT(OpenEntry(entry({uint64_t{1} << 40, uint64_t{1} << 40}), 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "has too many elements"));
  EXPECT_THAT(OpenEntry(entry({1, 1, 1, 1, 1, 1, 1, 1, 1}), 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "has 9 dimensions"));
  EXPECT_THAT(OpenEntry(entry(4), 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "has no \"shape\" array"));
}

TEST_F(SafetensorsTest, RejectsMalformedEntries) {
  EXPECT_THAT(OpenEntry(nlohmann::json::array(), 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensor 'w' is not an object"));
  EXPECT_THAT(OpenEntry({{"shape", {1}}, {"data_offsets", {0, 4}}}, 4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "has no string \"dtype\""));
  EXPECT_THAT(OpenEntry({{"dtype", 0}, {"shape", {1}}, {"data_offsets", {0, 4}}},
                        4),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "has no string \"dtype\""));
  for (const nlohmann::json& offsets :
       {nlohmann::json{0, 4, 8}, nlohmann::json{4}, nlohmann::json{-4, 4},
        nlohmann::json{0.0, 4}, nlohmann::json("0,4")}) {
    EXPECT_THAT(
        OpenEntry({{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", offsets}},
                  4),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 "has no \"data_offsets\" pair of unsigned integers"))
        << offsets.dump();
  }
  EXPECT_THAT(OpenSingle(R"({"__metadata__": {"format": 1}})", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "__metadata__ is not an object of strings"));
}

TEST_F(SafetensorsTest, RejectsOverlapsHolesAndTrailingBytes) {
  const std::string overlap =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_THAT(OpenSingle(overlap, PatternBytes(8, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensor 'b' overlaps tensor 'a'"));
  const std::string hole =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  EXPECT_THAT(OpenSingle(hole, PatternBytes(12, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensor 'b' starts at 8 leaving a hole"));
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_THAT(OpenSingle(header, PatternBytes(12, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensors cover 4 of the 12 bytes"));
}

TEST_F(SafetensorsTest, EveryTruncationFailsCleanly) {
  const std::string bytes = SafetensorsBytes(SmallTensors());
  Write("model.safetensors", bytes);
  ASSERT_TRUE(Open().ok());
  for (size_t length = 0; length < bytes.size(); ++length) {
    SCOPED_TRACE(absl::StrCat("prefix of ", length, " of ", bytes.size(),
                              " bytes"));
    Write("model.safetensors", bytes.substr(0, length));
    const auto model = Open();
    ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument)
        << model.status();
  }
}

TEST_F(SafetensorsTest, RejectsMalformedIndex) {
  WriteShardedModel();
  Write("model.safetensors.index.json", R"({"weight_map": )");
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "bad JSON in"));
  Write("model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "has no \"weight_map\" object"));
  WriteIndex(nlohmann::json::object());
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                               "has no \"weight_map\" object"));
  for (const nlohmann::json& shard :
       {nlohmann::json("../model-00001-of-00002.safetensors"),
        nlohmann::json("/etc/passwd"), nlohmann::json(""),
        nlohmann::json(".."), nlohmann::json(3)}) {
    WriteIndex({{"lm_head.weight", shard}});
    EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kInvalidArgument,
                                 "not a file name in the model directory"))
        << shard.dump();
  }
}

}  // namespace
}  // namespace weft
