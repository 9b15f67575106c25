// Tokenizer::FromHfFiles: a Hugging Face tokenizer.json (+ optional
// tokenizer_config.json, and generation_config.json found beside
// tokenizer.json) read into TokenizerParts. Each component is interpreted
// generically; a component type weft does not implement is an
// Unimplemented error naming it and where it is, never silently ignored.
//
// Supported: model BPE; normalizers NFC/NFD/NFKC/NFKD, Prepend, Replace,
// Sequence; pre-tokenizers Split, ByteLevel, Digits, Metaspace, Sequence;
// decoders ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
// Sequence; post-processors TemplateProcessing, ByteLevel, Bert/Roberta
// processing, Sequence.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/json_text.h"
#include "runtime/tokenizer/pipeline_tokenizer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/utf8.h"

namespace weft {
namespace {

using json = nlohmann::json;
using tokenizer_internal::AddedToken;
using tokenizer_internal::BpeModel;
using tokenizer_internal::BpeOptions;
using tokenizer_internal::Decoder;
using tokenizer_internal::Normalizer;
using tokenizer_internal::PrependScheme;
using tokenizer_internal::PreTokenizer;
using tokenizer_internal::Regex;
using tokenizer_internal::SplitBehavior;
using tokenizer_internal::TokenizerParts;

absl::StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  }
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string text = buffer.str();
  if (JsonTextDepth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": nests deeper than ", kMaxJsonDepth, " levels"));
  }
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat("bad JSON in ", path));
  }
  return parsed;
}

// `node[key]`, or null when absent; no copy.
const json& Field(const json& node, const char* key) {
  static const json* null_json = new json();
  if (!node.is_object()) return *null_json;
  auto it = node.find(key);
  return it == node.end() ? *null_json : *it;
}

absl::Status Bad(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("tokenizer.json: ", where, ": ", what));
}

absl::Status Unsupported(absl::string_view where, absl::string_view kind,
                         const json& node) {
  return absl::UnimplementedError(absl::StrCat(
      "tokenizer.json: ", where, ": ", kind, " type '",
      node.value("type", std::string("?")), "' is not supported by weft"));
}

// Typed optional fields: `fallback` when absent or null.
absl::StatusOr<bool> BoolField(const json& node, const char* key, bool fallback,
                               absl::string_view where) {
  auto it = node.find(key);
  if (it == node.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    return Bad(where, absl::StrCat(key, " is not a boolean"));
  }
  return it->get<bool>();
}

absl::StatusOr<std::string> StringField(const json& node, const char* key,
                                        std::string fallback,
                                        absl::string_view where) {
  auto it = node.find(key);
  if (it == node.end() || it->is_null()) return fallback;
  if (!it->is_string()) {
    return Bad(where, absl::StrCat(key, " is not a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<char32_t> CharField(const json& node, const char* key,
                                   std::string fallback,
                                   absl::string_view where) {
  absl::StatusOr<std::string> text = StringField(node, key, fallback, where);
  if (!text.ok()) return text.status();
  char32_t c = 0;
  const size_t length = tokenizer_internal::DecodeUtf8(*text, 0, &c);
  if (text->empty() || length != text->size()) {
    return Bad(where, absl::StrCat(key, " must be one character"));
  }
  return c;
}

// {"String": "..."} or {"Regex": "..."}.
absl::StatusOr<std::unique_ptr<Regex>> Pattern(const json& node,
                                               absl::string_view where) {
  auto pattern = node.find("pattern");
  if (pattern == node.end() || !pattern->is_object()) {
    return Bad(where, "pattern is missing");
  }
  if (auto s = pattern->find("String"); s != pattern->end() && s->is_string()) {
    return Regex::Compile(s->get<std::string>(), /*literal=*/true);
  }
  if (auto r = pattern->find("Regex"); r != pattern->end() && r->is_string()) {
    absl::StatusOr<std::unique_ptr<Regex>> regex =
        Regex::Compile(r->get<std::string>(), /*literal=*/false);
    if (!regex.ok()) return Bad(where, regex.status().message());
    return regex;
  }
  return Bad(where, "pattern is neither {\"String\"} nor {\"Regex\"}");
}

absl::StatusOr<PrependScheme> MetaspaceScheme(const json& node,
                                              absl::string_view where) {
  if (auto scheme = node.find("prepend_scheme");
      scheme != node.end() && !scheme->is_null()) {
    const std::string name =
        scheme->is_string() ? scheme->get<std::string>() : "";
    if (name == "always") return PrependScheme::kAlways;
    if (name == "first") return PrependScheme::kFirst;
    if (name == "never") return PrependScheme::kNever;
    return Bad(where, absl::StrCat("unknown prepend_scheme '", name, "'"));
  }
  // Files older than `tokenizers` 0.15 say add_prefix_space instead.
  absl::StatusOr<bool> add_prefix_space =
      BoolField(node, "add_prefix_space", true, where);
  if (!add_prefix_space.ok()) return add_prefix_space.status();
  return *add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
}

std::string TypeOf(const json& node) {
  return node.is_object() ? node.value("type", std::string()) : std::string();
}

absl::Status AddNormalizer(const json& node, const std::string& where,
                           Normalizer* normalizer) {
  if (node.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(node);
  if (type == "Sequence") {
    const json& steps = Field(node, "normalizers");
    for (size_t i = 0; i < steps.size(); ++i) {
      if (auto s = AddNormalizer(steps[i],
                                 absl::StrCat(where, ".normalizers[", i, "]"),
                                 normalizer);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (type == "NFC") {
    normalizer->AddUnicodeForm(Normalizer::Form::kNfc);
  } else if (type == "NFD") {
    normalizer->AddUnicodeForm(Normalizer::Form::kNfd);
  } else if (type == "NFKC") {
    normalizer->AddUnicodeForm(Normalizer::Form::kNfkc);
  } else if (type == "NFKD") {
    normalizer->AddUnicodeForm(Normalizer::Form::kNfkd);
  } else if (type == "Prepend") {
    absl::StatusOr<std::string> prepend =
        StringField(node, "prepend", "", where);
    if (!prepend.ok()) return prepend.status();
    normalizer->AddPrepend(*prepend);
  } else if (type == "Replace") {
    absl::StatusOr<std::unique_ptr<Regex>> pattern = Pattern(node, where);
    if (!pattern.ok()) return pattern.status();
    absl::StatusOr<std::string> content =
        StringField(node, "content", "", where);
    if (!content.ok()) return content.status();
    normalizer->AddReplace(*std::move(pattern), *content);
  } else {
    return Unsupported(where, "normalizer", node);
  }
  return absl::OkStatus();
}

absl::StatusOr<SplitBehavior> Behavior(const json& node,
                                       absl::string_view where) {
  absl::StatusOr<std::string> name = StringField(node, "behavior", "", where);
  if (!name.ok()) return name.status();
  if (*name == "Removed") return SplitBehavior::kRemoved;
  if (*name == "Isolated") return SplitBehavior::kIsolated;
  if (*name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (*name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (*name == "Contiguous") return SplitBehavior::kContiguous;
  return Bad(where, absl::StrCat("unknown split behavior '", *name, "'"));
}

absl::Status AddPreTokenizer(const json& node, const std::string& where,
                             PreTokenizer* pre_tokenizer) {
  if (node.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(node);
  if (type == "Sequence") {
    const json& steps = Field(node, "pretokenizers");
    for (size_t i = 0; i < steps.size(); ++i) {
      if (auto s = AddPreTokenizer(
              steps[i], absl::StrCat(where, ".pretokenizers[", i, "]"),
              pre_tokenizer);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (type == "Split") {
    absl::StatusOr<std::unique_ptr<Regex>> pattern = Pattern(node, where);
    if (!pattern.ok()) return pattern.status();
    absl::StatusOr<SplitBehavior> behavior = Behavior(node, where);
    if (!behavior.ok()) return behavior.status();
    absl::StatusOr<bool> invert = BoolField(node, "invert", false, where);
    if (!invert.ok()) return invert.status();
    pre_tokenizer->AddSplit(*std::move(pattern), *behavior, *invert);
  } else if (type == "ByteLevel") {
    absl::StatusOr<bool> add_prefix_space =
        BoolField(node, "add_prefix_space", true, where);
    if (!add_prefix_space.ok()) return add_prefix_space.status();
    absl::StatusOr<bool> use_regex = BoolField(node, "use_regex", true, where);
    if (!use_regex.ok()) return use_regex.status();
    pre_tokenizer->AddByteLevel(*add_prefix_space, *use_regex);
  } else if (type == "Digits") {
    absl::StatusOr<bool> individual =
        BoolField(node, "individual_digits", false, where);
    if (!individual.ok()) return individual.status();
    pre_tokenizer->AddDigits(*individual);
  } else if (type == "Metaspace") {
    absl::StatusOr<char32_t> replacement =
        CharField(node, "replacement", "\xE2\x96\x81", where);
    if (!replacement.ok()) return replacement.status();
    absl::StatusOr<PrependScheme> scheme = MetaspaceScheme(node, where);
    if (!scheme.ok()) return scheme.status();
    absl::StatusOr<bool> split = BoolField(node, "split", true, where);
    if (!split.ok()) return split.status();
    pre_tokenizer->AddMetaspace(*replacement, *scheme, *split);
  } else {
    return Unsupported(where, "pre-tokenizer", node);
  }
  return absl::OkStatus();
}

absl::Status AddDecoder(const json& node, const std::string& where,
                        Decoder* decoder) {
  if (node.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(node);
  if (type == "Sequence") {
    const json& steps = Field(node, "decoders");
    for (size_t i = 0; i < steps.size(); ++i) {
      if (auto s = AddDecoder(
              steps[i], absl::StrCat(where, ".decoders[", i, "]"), decoder);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    decoder->AddByteLevel();
  } else if (type == "Replace") {
    absl::StatusOr<std::unique_ptr<Regex>> pattern = Pattern(node, where);
    if (!pattern.ok()) return pattern.status();
    absl::StatusOr<std::string> content =
        StringField(node, "content", "", where);
    if (!content.ok()) return content.status();
    decoder->AddReplace(*std::move(pattern), *content);
  } else if (type == "ByteFallback") {
    decoder->AddByteFallback();
  } else if (type == "Fuse") {
    decoder->AddFuse();
  } else if (type == "Strip") {
    absl::StatusOr<char32_t> content = CharField(node, "content", " ", where);
    if (!content.ok()) return content.status();
    const json& start = node.value("start", json(0));
    const json& stop = node.value("stop", json(0));
    if (!start.is_number_unsigned() || !stop.is_number_unsigned()) {
      return Bad(where, "start/stop are not non-negative integers");
    }
    decoder->AddStrip(*content, start.get<size_t>(), stop.get<size_t>());
  } else if (type == "Metaspace") {
    absl::StatusOr<char32_t> replacement =
        CharField(node, "replacement", "\xE2\x96\x81", where);
    if (!replacement.ok()) return replacement.status();
    absl::StatusOr<PrependScheme> scheme = MetaspaceScheme(node, where);
    if (!scheme.ok()) return scheme.status();
    decoder->AddMetaspace(*replacement, *scheme);
  } else {
    return Unsupported(where, "decoder", node);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BpeModel>> ParseModel(const json& node) {
  const std::string where = "model";
  if (!node.is_object()) return Bad(where, "missing");
  const std::string type = TypeOf(node);
  if (!type.empty() && type != "BPE") return Unsupported(where, "model", node);
  const json& vocab_node = Field(node, "vocab");
  if (!vocab_node.is_object()) return Bad(where, "vocab is not an object");
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(vocab_node.size());
  for (const auto& [token, id] : vocab_node.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= (1 << 24)) {
      return Bad(where, absl::StrCat("vocab entry '", token,
                                     "' has an id that is not in [0, 2^24)"));
    }
    vocab.emplace_back(token, static_cast<int32_t>(id.get<int64_t>()));
  }
  const json& merges_node = Field(node, "merges");
  if (!merges_node.is_array()) return Bad(where, "merges is not an array");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_node.size());
  for (size_t i = 0; i < merges_node.size(); ++i) {
    const json& merge = merges_node[i];
    if (merge.is_string()) {
      // "left right": exactly one space, as `tokenizers` requires.
      const std::string text = merge.get<std::string>();
      const size_t space = text.find(' ');
      if (space == std::string::npos ||
          text.find(' ', space + 1) != std::string::npos) {
        return Bad(where, absl::StrCat("merges[", i, "] '", text,
                                       "' is not two tokens"));
      }
      merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      merges.emplace_back(merge[0].get<std::string>(),
                          merge[1].get<std::string>());
    } else {
      return Bad(where, absl::StrCat("merges[", i, "] is not a pair"));
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    absl::StatusOr<std::string> value = StringField(node, key, "", where);
    if (!value.ok()) return value.status();
    if (!value->empty()) {
      return absl::UnimplementedError(absl::StrCat(
          "tokenizer.json: model.", key, " is not supported by weft"));
    }
  }
  if (auto dropout = node.find("dropout"); dropout != node.end() &&
                                           !dropout->is_null() &&
                                           dropout->get<double>() != 0.0) {
    return absl::UnimplementedError(
        "tokenizer.json: model.dropout (BPE dropout) is not supported by weft");
  }
  BpeOptions options;
  absl::StatusOr<bool> byte_fallback =
      BoolField(node, "byte_fallback", false, where);
  if (!byte_fallback.ok()) return byte_fallback.status();
  absl::StatusOr<bool> fuse_unk = BoolField(node, "fuse_unk", false, where);
  if (!fuse_unk.ok()) return fuse_unk.status();
  absl::StatusOr<bool> ignore_merges =
      BoolField(node, "ignore_merges", false, where);
  if (!ignore_merges.ok()) return ignore_merges.status();
  absl::StatusOr<std::string> unk_token =
      StringField(node, "unk_token", "", where);
  if (!unk_token.ok()) return unk_token.status();
  options.byte_fallback = *byte_fallback;
  options.fuse_unk = *fuse_unk;
  options.ignore_merges = *ignore_merges;
  options.unk_token = *unk_token;
  return BpeModel::Create(vocab, merges, options, "tokenizer.json: model");
}

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(
    const json& node, const BpeModel& model) {
  std::vector<AddedToken> tokens;
  if (node.is_null()) return tokens;
  if (!node.is_array()) return Bad("added_tokens", "not an array");
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string where = absl::StrCat("added_tokens[", i, "]");
    const json& entry = node[i];
    if (!entry.is_object()) return Bad(where, "not an object");
    AddedToken token;
    absl::StatusOr<std::string> content =
        StringField(entry, "content", "", where);
    if (!content.ok()) return content.status();
    token.content = *content;
    // A token spelled like a vocabulary entry takes that entry's id, as in
    // `tokenizers`.
    token.id = model.TokenToId(token.content);
    if (token.id < 0) {
      const json& id = Field(entry, "id");
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() >= (1 << 24)) {
        return Bad(where, "id is missing or not in [0, 2^24)");
      }
      token.id = static_cast<int32_t>(id.get<int64_t>());
    }
    absl::StatusOr<bool> special = BoolField(entry, "special", false, where);
    absl::StatusOr<bool> lstrip = BoolField(entry, "lstrip", false, where);
    absl::StatusOr<bool> rstrip = BoolField(entry, "rstrip", false, where);
    absl::StatusOr<bool> single_word =
        BoolField(entry, "single_word", false, where);
    if (!special.ok()) return special.status();
    if (!lstrip.ok()) return lstrip.status();
    if (!rstrip.ok()) return rstrip.status();
    if (!single_word.ok()) return single_word.status();
    absl::StatusOr<bool> normalized =
        BoolField(entry, "normalized", !*special, where);
    if (!normalized.ok()) return normalized.status();
    token.special = *special;
    token.lstrip = *lstrip;
    token.rstrip = *rstrip;
    token.single_word = *single_word;
    token.normalized = *normalized;
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// Special-token ids a post-processor puts before and after the sequence.
absl::Status ParsePostProcessor(const json& node, const std::string& where,
                                TokenizerParts* parts) {
  if (node.is_null()) return absl::OkStatus();
  const std::string type = TypeOf(node);
  if (type == "Sequence") {
    const json& steps = Field(node, "processors");
    for (size_t i = 0; i < steps.size(); ++i) {
      if (auto s = ParsePostProcessor(
              steps[i], absl::StrCat(where, ".processors[", i, "]"), parts);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    const json& cls = Field(node, "cls");
    const json& sep = Field(node, "sep");
    if (!cls.is_array() || cls.size() != 2 || !cls[1].is_number_integer() ||
        !sep.is_array() || sep.size() != 2 || !sep[1].is_number_integer()) {
      return Bad(where, "cls/sep are not [token, id] pairs");
    }
    parts->prefix_ids.push_back(cls[1].get<int32_t>());
    parts->suffix_ids.push_back(sep[1].get<int32_t>());
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return Unsupported(where, "post-processor", node);
  }
  const json& single = Field(node, "single");
  const json& special_tokens = Field(node, "special_tokens");
  if (!single.is_array() || !special_tokens.is_object()) {
    return Bad(where, "single/special_tokens are malformed");
  }
  bool after_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const json& piece = single[i];
    if (piece.contains("Sequence")) {
      after_sequence = true;
      continue;
    }
    const json& special = Field(piece, "SpecialToken");
    if (!special.is_object() || !Field(special, "id").is_string()) {
      return Bad(where, absl::StrCat("single[", i, "] is malformed"));
    }
    const std::string name = special["id"].get<std::string>();
    auto entry = special_tokens.find(name);
    if (entry == special_tokens.end() || !entry->is_object() ||
        !entry->value("ids", json()).is_array()) {
      return Bad(where, absl::StrCat("special token '", name,
                                     "' is not in special_tokens"));
    }
    for (const json& id : (*entry)["ids"]) {
      if (!id.is_number_integer()) return Bad(where, "ids are not integers");
      (after_sequence ? parts->suffix_ids : parts->prefix_ids)
          .push_back(id.get<int32_t>());
    }
  }
  return absl::OkStatus();
}

// A token named in tokenizer_config.json: a string, or {"content": ...}.
std::string ConfigToken(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->value("content", json()).is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return "";
}

int32_t ResolveId(absl::string_view content, const TokenizerParts& parts) {
  if (content.empty()) return -1;
  for (const AddedToken& token : parts.added_tokens) {
    if (token.content == content) return token.id;
  }
  return parts.model->TokenToId(content);
}

void AddStop(int32_t id, std::vector<int32_t>* stops) {
  if (id >= 0 && std::find(stops->begin(), stops->end(), id) == stops->end()) {
    stops->push_back(id);
  }
}

// BOS/EOS from tokenizer_config.json (BOS also from a one-token
// post-processor prefix), and the ids that end generation: EOS,
// generation_config.json's eos_token_id (Llama 3 Instruct lists
// <|end_of_text|>, <|eom_id|> and <|eot_id|> there), and special tokens
// spelled like end-of-turn tokens.
void SetUpSpecialIds(const json& config,
                     const std::filesystem::path& generation_config,
                     TokenizerParts* parts) {
  parts->bos_id = ResolveId(ConfigToken(config, "bos_token"), *parts);
  if (parts->bos_id < 0 && parts->prefix_ids.size() == 1) {
    parts->bos_id = parts->prefix_ids[0];
  }
  parts->eos_id = ResolveId(ConfigToken(config, "eos_token"), *parts);
  if (!generation_config.empty() &&
      std::filesystem::exists(generation_config)) {
    absl::StatusOr<json> file = ReadJson(generation_config.string());
    if (file.ok() && file->is_object()) {
      const json& ids = Field(*file, "eos_token_id");
      if (ids.is_number_integer()) {
        AddStop(ids.get<int32_t>(), &parts->stop_ids);
      }
      if (ids.is_array()) {
        for (const json& id : ids) {
          if (id.is_number_integer()) {
            AddStop(id.get<int32_t>(), &parts->stop_ids);
          }
        }
      }
    }
  }
  if (parts->eos_id < 0 && !parts->stop_ids.empty()) {
    parts->eos_id = parts->stop_ids[0];
  }
  for (const AddedToken& token : parts->added_tokens) {
    if (token.special &&
        tokenizer_internal::IsEndOfGenerationSpelling(token.content)) {
      AddStop(token.id, &parts->stop_ids);
    }
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Parse(const json& root,
                                                 const json& config,
                                                 const std::string& source,
                                                 bool from_file) {
  TokenizerParts parts;
  absl::StatusOr<std::unique_ptr<BpeModel>> model =
      ParseModel(Field(root, "model"));
  if (!model.ok()) return model.status();
  parts.model = *std::move(model);
  if (absl::Status s = AddNormalizer(Field(root, "normalizer"), "normalizer",
                                     &parts.normalizer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = AddPreTokenizer(Field(root, "pre_tokenizer"),
                                       "pre_tokenizer", &parts.pre_tokenizer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          AddDecoder(Field(root, "decoder"), "decoder", &parts.decoder);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ParsePostProcessor(Field(root, "post_processor"),
                                          "post_processor", &parts);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::vector<AddedToken>> added =
      ParseAddedTokens(Field(root, "added_tokens"), *parts.model);
  if (!added.ok()) return added.status();
  parts.added_tokens = *std::move(added);
  // A tokenizer given as text has no folder to find generation_config.json in.
  std::filesystem::path generation_config;
  if (from_file) {
    generation_config =
        std::filesystem::path(source).parent_path() / "generation_config.json";
  }
  SetUpSpecialIds(config, generation_config, &parts);
  return tokenizer_internal::MakePipelineTokenizer(std::move(parts), source);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfFiles(
    const std::string& tokenizer_json_path,
    const std::string& tokenizer_config_json_path) {
  absl::StatusOr<json> root = ReadJson(tokenizer_json_path);
  if (!root.ok()) return root.status();
  if (!root->is_object()) return Bad("top level", "not an object");
  json config = json::object();
  if (!tokenizer_config_json_path.empty()) {
    absl::StatusOr<json> file = ReadJson(tokenizer_config_json_path);
    if (!file.ok()) return file.status();
    if (file->is_object()) config = *std::move(file);
  }
  // The parsers check the types they rely on; this catches the rest.
  try {
    return Parse(*root, config, tokenizer_json_path, /*from_file=*/true);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokenizer_json_path, ": malformed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfJsonText(
    const std::string& tokenizer_json, const std::string& tokenizer_config_json,
    const std::string& origin) {
  for (const std::string* text : {&tokenizer_json, &tokenizer_config_json}) {
    if (JsonTextDepth(*text, kMaxJsonDepth) > kMaxJsonDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": nests deeper than ", kMaxJsonDepth, " levels"));
    }
  }
  json root = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("bad JSON in ", origin));
  }
  json config = json::object();
  if (!tokenizer_config_json.empty()) {
    json parsed = json::parse(tokenizer_config_json, nullptr, false);
    if (parsed.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad tokenizer config JSON in ", origin));
    }
    if (parsed.is_object()) config = std::move(parsed);
  }
  try {
    return Parse(root, config, origin, /*from_file=*/false);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": malformed: ", e.what()));
  }
}

}  // namespace weft
