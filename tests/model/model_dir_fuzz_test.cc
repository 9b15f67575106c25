// Randomly damaged Hugging Face model directories (tests/fixtures/tiny_llama
// and tiny_qwen2, as transformers saved them) through everything that
// reads one: config.json, tokenizer.json and tokenizer_config.json with
// values of other types and extremes, keys dropped, text cut or flipped;
// model.safetensors with its header's shapes, dtypes and offsets changed
// (the length prefix kept right, so the JSON is what is tested) or its
// bytes damaged. Each directory must open and give a model, or be refused
// with a loader's status (InvalidArgument, NotFound, Unimplemented), never
// crash or throw. What opens must tokenize into ids inside its vocabulary,
// and a tenth of what opens must build a model that runs those ids to
// logits, one row a token, finite unless the weights' bytes were damaged
// (or refuse ids past the model's vocabulary, or a prompt past a damaged
// context length). A config whose sizes disagree with the tensors must be
// refused before a kernel reads past them: under ASan (tools/sanitize.sh)
// a read past a heap buffer fails the test; past the end of a mapped file
// only a crash would. (safetensors_test and model_files_test check the
// malformed cases one by one; this covers the ones nobody listed.)
// WEFT_FUZZ_ITERATIONS (default 1500 damaged directories a fixture, after
// the one as saved) and WEFT_FUZZ_SEED set the run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "runtime/sequence_runner.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using Json = nlohmann::ordered_json;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// The files that ModelFiles reads from a directory.
constexpr const char* kFiles[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                  "model.safetensors", "generation_config.json"};
constexpr int kSafetensors = 3;  // its index in kFiles

// A loader's refusal: malformed (InvalidArgument), a file or tensor that is
// not there (NotFound), a dtype or architecture weft does not serve
// (Unimplemented); a run past the context is OutOfRange.
bool IsRefusal(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kUnimplemented:
      return !status.message().empty();
    default:
      return false;
  }
}

class ModelDirFuzzTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = test::MakeScratchDir("weft_model_dir_fuzz");
    ASSERT_FALSE(dir_.empty());
    const std::filesystem::path fixture =
        std::filesystem::path(WEFT_SOURCE_DIR) / "tests/fixtures" / GetParam();
    for (const char* name : kFiles) pristine_.push_back(ReadFile(fixture / name));
    ASSERT_GT(pristine_[kSafetensors].size(), 8u) << fixture;
    rng_.seed(static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1)));
  }
  void TearDown() override { test::RemoveScratchDir(dir_); }

  int Below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  Json RandomValue() {
    switch (Below(20)) {
      case 0: return nullptr;
      case 1: return true;
      case 2: return 0;
      case 3: return -1;
      case 4: return 1;
      case 5: return 3;
      case 6: return 1 << 20;
      case 7: return int64_t{1} << 40;
      case 8: return uint64_t{1} << 63;
      case 9: return 1e308;
      case 10: return -0.5;
      case 11: return 2.5;
      case 12: return "";
      case 13: return "F16";
      case 14: return "llama3";
      case 15: return Json::array();
      case 16: return Json::object();
      case 17: return Json::array({0, 1});
      case 18: return Json::array({4, -1});
      default: return Below(512);
    }
  }

  // Replaces, drops or adds a value somewhere in `value` (a random walk down).
  void MutateTree(Json& value, int depth = 0) {
    const bool descend = depth < 6 && (value.is_object() || value.is_array()) &&
                         !value.empty() && Below(4) != 0;
    if (descend) {
      auto it = value.begin();
      std::advance(it, Below(static_cast<int>(value.size())));
      MutateTree(*it, depth + 1);
      return;
    }
    if (depth == 0) {  // keep the root an object: its type alone is one check
      if (!value.is_object() || value.empty()) return;
      auto it = value.begin();
      std::advance(it, Below(static_cast<int>(value.size())));
      if (Below(4) == 0) {
        value.erase(it.key());
      } else {
        it.value() = RandomValue();
      }
      return;
    }
    if (value.is_object() && !value.empty() && Below(3) == 0) {
      auto it = value.begin();
      std::advance(it, Below(static_cast<int>(value.size())));
      value.erase(it.key());
      return;
    }
    if (value.is_array() && Below(3) == 0) {
      if (!value.empty() && Below(2) == 0) {
        value.erase(value.begin() + Below(static_cast<int>(value.size())));
      } else {
        value.push_back(RandomValue());
      }
      return;
    }
    value = RandomValue();
  }

  void DamageBytes(std::string& bytes) {
    if (bytes.empty()) return;
    const size_t at = static_cast<size_t>(Below(static_cast<int>(bytes.size())));
    switch (Below(4)) {
      case 0: bytes.resize(at); break;
      case 1: bytes.erase(at, static_cast<size_t>(1 + Below(8))); break;
      case 2: bytes.insert(at, bytes.substr(at, static_cast<size_t>(Below(16)))); break;
      default: bytes[at] = static_cast<char>(Below(256)); break;
    }
  }

  // A JSON file mutated as a tree (re-dumped) or as text.
  std::string DamageJson(const std::string& text) {
    Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || Below(4) == 0) {  // not JSON after an earlier damage
      std::string bytes = text;
      DamageBytes(bytes);
      return bytes;
    }
    for (int i = 0, n = 1 + Below(3); i < n; ++i) MutateTree(json);
    return json.dump(1, ' ', false, Json::error_handler_t::replace);
  }

  // model.safetensors: the header mutated as JSON with its length prefix
  // rewritten (3 in 4), or the file's bytes damaged.
  std::string DamageSafetensors(const std::string& file) {
    uint64_t length = ~uint64_t{0};
    if (file.size() >= 8) std::memcpy(&length, file.data(), 8);
    Json header = file.size() >= 8 && length <= file.size() - 8
                      ? Json::parse(file.substr(8, length), nullptr, /*allow_exceptions=*/false)
                      : Json(Json::value_t::discarded);
    if (header.is_discarded() || Below(4) == 0) {
      std::string bytes = file;
      DamageBytes(bytes);
      return bytes;
    }
    for (int i = 0, n = 1 + Below(2); i < n; ++i) MutateTree(header);
    std::string text = header.dump(-1, ' ', false, Json::error_handler_t::replace);
    while (text.size() % 8 != 0) text += ' ';
    const uint64_t new_length = text.size();
    std::string out(8, '\0');
    std::memcpy(out.data(), &new_length, 8);
    return out + text + file.substr(8 + length);
  }

  std::filesystem::path dir_;
  std::vector<std::string> pristine_;
  std::mt19937_64 rng_;
};

TEST_P(ModelDirFuzzTest, DamagedDirectoriesLoadAndRunOrAreRefused) {
  int64_t opened = 0, refused = 0, models = 0, ran = 0;
  const int64_t iterations = test::EnvInt("WEFT_FUZZ_ITERATIONS", 1500);
  for (int64_t i = 0; i <= iterations; ++i) {
    std::vector<std::string> files = pristine_;
    if (i > 0) {  // the first as saved
      for (int j = 0, n = 1 + Below(2); j < n; ++j) {
        const int target = Below(static_cast<int>(std::size(kFiles)));
        files[target] = target == kSafetensors ? DamageSafetensors(files[target])
                                               : DamageJson(files[target]);
      }
    }
    for (size_t f = 0; f < files.size(); ++f) WriteFile(dir_ / kFiles[f], files[f]);
    const std::string where = "at iteration " + std::to_string(i);

    absl::StatusOr<std::unique_ptr<ModelFiles>> opened_files;
    try {
      opened_files = ModelFiles::Open(dir_.string());
    } catch (const std::exception& e) {
      FAIL() << "exception " << e.what() << " opening " << where;
    }
    if (i == 0) {
      ASSERT_TRUE(opened_files.ok()) << opened_files.status();
    }
    if (!opened_files.ok()) {
      ++refused;
      ASSERT_TRUE(IsRefusal(opened_files.status())) << opened_files.status() << " " << where;
      continue;
    }
    ++opened;
    const ModelFiles& model_files = **opened_files;
    const Tokenizer& tokenizer = model_files.tokenizer();
    std::vector<int32_t> ids;
    try {
      ids = tokenizer.Encode("Hello world, \xE2\x82\xAC <s></s>\xFF", EncodeOptions{});
      tokenizer.Decode(ids, true);
    } catch (const std::exception& e) {
      FAIL() << "exception " << e.what() << " tokenizing " << where;
    }
    for (int32_t id : ids) {
      ASSERT_TRUE(id >= 0 && id < tokenizer.vocab_size()) << id << " " << where;
    }
    // A forward pass for a tenth of the directories that open (the
    // reference kernels' time), and always for the first.
    if (i > 0 && Below(10) != 0) continue;
    CpuBackend backend;
    ModelPlan plan;
    plan.max_num_tokens = 16;
    plan.max_num_logits = 16;
    plan.num_kv_blocks = 8;
    plan.block_size = 4;
    absl::StatusOr<std::unique_ptr<LlamaModel>> model;
    try {
      model = LlamaModel::Create(model_files, &backend, plan);
    } catch (const std::exception& e) {
      FAIL() << "exception " << e.what() << " building the model " << where;
    }
    if (i == 0) {
      ASSERT_TRUE(model.ok()) << model.status();
    }
    if (!model.ok()) {
      ASSERT_TRUE(IsRefusal(model.status())) << model.status() << " " << where;
      continue;
    }
    ++models;
    // The tokenizer's own ids (at most the plan's 16), which a damaged
    // tokenizer.json may put past the model's vocabulary: Forward refuses
    // those.
    const int vocab = model_files.config().vocab_size;
    std::vector<int32_t> prompt(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 16));
    if (prompt.empty()) prompt.push_back(0);
    const bool in_vocabulary = std::all_of(prompt.begin(), prompt.end(),
                                           [&](int32_t id) { return id < vocab; });
    SequenceRunner runner(model->get());
    auto logits = runner.AppendAllLogits(prompt);
    if (i == 0) {
      ASSERT_TRUE(logits.ok()) << logits.status();
    }
    if (!logits.ok()) {
      // Ids past the model's vocabulary, or a context (a damaged
      // max_position_embeddings) shorter than the prompt.
      const absl::StatusCode code = logits.status().code();
      ASSERT_TRUE((code == absl::StatusCode::kInvalidArgument && !in_vocabulary) ||
                  code == absl::StatusCode::kOutOfRange)
          << logits.status() << " " << where;
      continue;
    }
    ++ran;
    ASSERT_EQ(logits->size(), prompt.size() * static_cast<size_t>(vocab)) << where;
    // Finite, unless the damage reached the weights' bytes (a flipped
    // exponent is a NaN weight, which no loader checks for).
    if (files[kSafetensors] == pristine_[kSafetensors]) {
      for (float v : *logits) ASSERT_TRUE(std::isfinite(v)) << v << " " << where;
    }
  }
  std::cout << opened << " damaged directories opened, " << refused << " refused; "
            << models << " models built, " << ran << " ran\n";
  EXPECT_GT(refused, 0);
  EXPECT_GT(opened, 1);  // some damage leaves a usable directory
  EXPECT_GT(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelDirFuzzTest,
                         ::testing::Values("tiny_llama", "tiny_qwen2"));

}  // namespace
}  // namespace weft
