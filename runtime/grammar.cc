#include "runtime/grammar.h"

#include <dlpack/dlpack.h>

#include <exception>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/tokenizer/tokenizer.h"
#include "xgrammar/xgrammar.h"

namespace weft {

class CompiledGrammar {
 public:
  explicit CompiledGrammar(xgrammar::CompiledGrammar grammar)
      : grammar_(std::move(grammar)) {}
  const xgrammar::CompiledGrammar& get() const { return grammar_; }

 private:
  xgrammar::CompiledGrammar grammar_;
};

namespace {

// An EBNF string literal matching `text` exactly (xgrammar's escapes).
std::string EbnfLiteral(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// xgrammar's error text without the "[hh:mm:ss] /path/file.cc:83: " its
// logger puts first (and the trailing newline).
std::string ErrorText(const std::exception& e) {
  std::string text = e.what();
  if (!text.empty() && text[0] == '[') {
    const size_t time_end = text.find("] ");
    const size_t where_end =
        time_end == std::string::npos ? time_end : text.find(": ", time_end);
    if (where_end != std::string::npos) text.erase(0, where_end + 2);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

// vLLM's test for an EBNF grammar (GBNF style) rather than a Lark one.
bool LooksLikeEbnf(const std::string& grammar) {
  return absl::StrContains(grammar, "::=");
}

}  // namespace

struct GrammarCompiler::Impl {
  Impl(xgrammar::TokenizerInfo info, const GrammarConfig& config)
      : info(std::move(info)),
        compiler(this->info, config.compile_threads, /*cache_enabled=*/true,
                 config.cache_bytes) {}
  xgrammar::TokenizerInfo info;
  xgrammar::GrammarCompiler compiler;
};

absl::StatusOr<std::unique_ptr<GrammarCompiler>> GrammarCompiler::Create(
    const Tokenizer& tokenizer, int vocab_size, const GrammarConfig& config) {
  const int tokens = tokenizer.vocab_size();
  if (vocab_size < tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grammar: the model's vocabulary (", vocab_size,
        ") is smaller than the tokenizer's (", tokens, ")"));
  }
  // Each token as the bytes it adds to the text (RAW: no further decoding
  // on xgrammar's side); special tokens as "", which xgrammar never allows
  // (stop tokens are passed to each matcher).
  std::vector<std::string> vocab(tokens);
  for (int32_t id = 0; id < tokens; ++id) {
    if (!tokenizer.IsSpecial(id)) vocab[id] = tokenizer.TokenBytes(id);
  }
  try {
    xgrammar::TokenizerInfo info(vocab, xgrammar::VocabType::RAW, vocab_size,
                                 tokenizer.stop_ids());
    return std::unique_ptr<GrammarCompiler>(new GrammarCompiler(
        std::make_unique<Impl>(std::move(info), config)));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("grammar: cannot index the vocabulary: ", ErrorText(e)));
  }
}

GrammarCompiler::GrammarCompiler(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
GrammarCompiler::~GrammarCompiler() = default;

int GrammarCompiler::vocab_size() const { return impl_->info.GetVocabSize(); }

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::Compile(
    const StructuredOutput& output) {
  using Kind = StructuredOutput::Kind;
  if (output.spec.size() > kMaxGrammarSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "is ", output.spec.size(), " bytes long; at most ",
        kMaxGrammarSpecBytes, " are accepted"));
  }
  if (output.choices.size() > kMaxChoices) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lists ", output.choices.size(), " choices; at most ", kMaxChoices,
        " are accepted"));
  }
  try {
    xgrammar::GrammarCompiler& compiler = impl_->compiler;
    std::optional<xgrammar::CompiledGrammar> compiled;
    switch (output.kind) {
      case Kind::kNone:
        return absl::InvalidArgumentError("no grammar to compile");
      case Kind::kJsonObject:
        compiled = compiler.CompileJSONSchema(R"({"type": "object"})",
                                              output.any_whitespace);
        break;
      case Kind::kJsonSchema:
        compiled = compiler.CompileJSONSchema(output.spec, output.any_whitespace);
        break;
      case Kind::kRegex:
        compiled = compiler.CompileRegex(output.spec);
        break;
      case Kind::kChoice: {
        if (output.choices.empty()) {
          return absl::InvalidArgumentError("lists no choices");
        }
        size_t bytes = 0;
        std::string ebnf = "root ::= ";
        for (size_t i = 0; i < output.choices.size(); ++i) {
          bytes += output.choices[i].size();
          if (i > 0) ebnf += " | ";
          ebnf += EbnfLiteral(output.choices[i]);
        }
        if (bytes > kMaxGrammarSpecBytes) {
          return absl::InvalidArgumentError(absl::StrCat(
              "holds ", bytes, " bytes of choices; at most ",
              kMaxGrammarSpecBytes, " are accepted"));
        }
        compiled = compiler.CompileGrammar(ebnf);
        break;
      }
      case Kind::kGrammar:
        compiled = LooksLikeEbnf(output.spec)
                       ? compiler.CompileGrammar(output.spec)
                       : compiler.CompileLark(output.spec);
        break;
    }
    return std::make_shared<const CompiledGrammar>(*std::move(compiled));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("is not valid: ", ErrorText(e)));
  }
}

struct GrammarMatcher::Impl {
  Impl(std::shared_ptr<const CompiledGrammar> compiled,
       absl::Span<const int32_t> stop_ids)
      : grammar(std::move(compiled)),
        matcher(grammar->get(),
                std::vector<int>(stop_ids.begin(), stop_ids.end())),
        mask(xgrammar::GetBitmaskSize(
            grammar->get().GetTokenizerInfo().GetVocabSize())) {
    tensor.data = mask.data();
    tensor.device = DLDevice{kDLCPU, 0};
    tensor.ndim = 1;
    tensor.dtype = xgrammar::GetBitmaskDLType();
    shape = static_cast<int64_t>(mask.size());
    tensor.shape = &shape;
    tensor.strides = nullptr;
    tensor.byte_offset = 0;
  }
  std::shared_ptr<const CompiledGrammar> grammar;  // outlives the matcher
  xgrammar::GrammarMatcher matcher;
  std::vector<uint32_t> mask;
  int64_t shape = 0;
  DLTensor tensor{};
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar,
                               absl::Span<const int32_t> stop_ids)
    : impl_(std::make_unique<Impl>(std::move(grammar), stop_ids)) {}
GrammarMatcher::~GrammarMatcher() = default;

absl::Span<const uint32_t> GrammarMatcher::NextTokenMask() {
  impl_->matcher.FillNextTokenBitmask(&impl_->tensor);
  return impl_->mask;
}

bool GrammarMatcher::Accept(int32_t token) {
  return impl_->matcher.AcceptToken(token);
}

bool GrammarMatcher::IsTerminated() const {
  return impl_->matcher.IsTerminated();
}

}  // namespace weft
