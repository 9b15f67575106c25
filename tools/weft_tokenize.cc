// weft-tokenize: tokenizes or detokenizes JSON lines with a model's
// tokenizer, for comparing weft with other implementations.
//
//   weft-tokenize --model M.gguf < texts.jsonl      one JSON string per line
//                                                   → one JSON array of ids
//   weft-tokenize --model DIR --decode < ids.jsonl  one JSON array of ids
//                                                   → one JSON string
// DIR holds tokenizer.json (+ optional tokenizer_config.json). Special
// tokens written in the text are parsed as special tokens. A line that is
// not of the expected form is reported on stderr with its number, and the
// exit status is 1.
#include <sys/stat.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/loader/gguf.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/flag_spelling.h"

ABSL_FLAG(std::string, model, "",
          "a .gguf file, or a directory holding tokenizer.json");
ABSL_FLAG(bool, decode, false,
          "read JSON arrays of ids and print the decoded JSON strings");
ABSL_FLAG(bool, add_special_tokens, false,
          "add BOS/EOS as the tokenizer definition asks");
ABSL_FLAG(bool, skip_special_tokens, false,
          "with --decode: leave special tokens out of the text");

namespace weft {
namespace {

using json = nlohmann::json;

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& path) {
  if (!Exists(path)) {
    return absl::NotFoundError(absl::StrCat("model '", path, "' not found"));
  }
  if (!IsDirectory(path)) {
    absl::StatusOr<std::unique_ptr<GgufFile>> gguf = GgufFile::Open(path);
    if (!gguf.ok()) return gguf.status();
    return Tokenizer::FromGguf(**gguf);
  }
  // A model directory's config.json is not needed here, but a broken one
  // means a broken model directory; say so rather than something vaguer.
  const std::string config_path = path + "/config.json";
  if (Exists(config_path)) {
    std::FILE* file = std::fopen(config_path.c_str(), "rb");
    std::string text;
    if (file != nullptr) {
      char buffer[4096];
      size_t n;
      while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
        text.append(buffer, n);
      }
      std::fclose(file);
    }
    if (json::parse(text, nullptr, false).is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad JSON in ", config_path));
    }
  }
  const std::string tokenizer_json = path + "/tokenizer.json";
  if (!Exists(tokenizer_json)) {
    return absl::NotFoundError(
        absl::StrCat("'", tokenizer_json, "' not found"));
  }
  const std::string tokenizer_config = path + "/tokenizer_config.json";
  return Tokenizer::FromHfFiles(
      tokenizer_json, Exists(tokenizer_config) ? tokenizer_config : "");
}

int Fail(const std::string& message) {
  std::cerr << "weft-tokenize: " << message << "\n";
  return 1;
}

int Run() {
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return Fail("--model is required");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(model);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()));

  const bool decode = absl::GetFlag(FLAGS_decode);
  EncodeOptions options;
  options.parse_special = true;
  options.add_special_tokens = absl::GetFlag(FLAGS_add_special_tokens);
  const bool skip_special = absl::GetFlag(FLAGS_skip_special_tokens);

  std::string line;
  for (size_t line_number = 1; std::getline(std::cin, line); ++line_number) {
    const json input = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (decode) {
      std::vector<int32_t> ids;
      bool ok = input.is_array();
      for (size_t i = 0; ok && i < input.size(); ++i) {
        ok = input[i].is_number_integer() &&
             input[i].get<int64_t>() >= INT32_MIN &&
             input[i].get<int64_t>() <= INT32_MAX;
        if (ok) ids.push_back(static_cast<int32_t>(input[i].get<int64_t>()));
      }
      if (!ok) {
        return Fail(absl::StrCat("line ", line_number,
                                 ": expected a JSON array of token ids"));
      }
      const std::string text = (*tokenizer)->Decode(ids, skip_special);
      std::cout << json(text).dump(-1, ' ', /*ensure_ascii=*/false,
                                   json::error_handler_t::replace)
                << "\n";
    } else {
      if (!input.is_string()) {
        return Fail(
            absl::StrCat("line ", line_number, ": expected a JSON string"));
      }
      std::cout << json((*tokenizer)->Encode(input.get<std::string>(), options))
                       .dump()
                << "\n";
    }
    std::cout.flush();
  }
  return 0;
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "weft-tokenize --model M [--decode] < lines.jsonl");
  std::vector<std::string> flag_storage;
  weft::AcceptDashedFlags(argc, argv, flag_storage);
  absl::ParseCommandLine(argc, argv);
  return weft::Run();
}
