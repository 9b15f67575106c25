// Structured output: a sample constrained to a JSON schema, a regular
// expression, a list of choices or a context-free grammar, by masking at
// each step the tokens that cannot continue a match (OpenAI's
// response_format, vLLM's structured_outputs / guided_*).
//
// Built on xgrammar (third_party/xgrammar.cmake), the engine vLLM, SGLang
// and TensorRT-LLM use by default: a request's grammar is compiled against
// the vocabulary once (GrammarCompiler, cached by its text), then each
// sample walks it with its own GrammarMatcher. Only grammar.cc sees
// xgrammar's headers.
//
// Threads: GrammarCompiler::Compile may be called from any thread (the
// front ends compile before they queue a request, so that a bad schema is
// a 400 and a slow one never stalls the engine). A GrammarMatcher is used by
// one thread at a time; CompiledGrammar is immutable and shared.
#ifndef WEFT_RUNTIME_GRAMMAR_H_
#define WEFT_RUNTIME_GRAMMAR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace weft {

class Tokenizer;

// What a request's output must match.
struct StructuredOutput {
  enum class Kind {
    kNone,        // unconstrained
    kJsonObject,  // any JSON object (OpenAI's json_object)
    kJson,        // any JSON value (TensorRT-LLM's "json" guide)
    kJsonSchema,  // `spec`: a JSON schema, as JSON text
    kRegex,       // `spec`: a regular expression (whole output)
    kChoice,      // exactly one of `choices`
    kGrammar,     // `spec`: an EBNF grammar (GBNF-style, "root ::= …"), or Lark
  };
  Kind kind = Kind::kNone;
  std::string spec;
  std::vector<std::string> choices;
  // JSON: any whitespace between tokens where JSON allows it (vLLM's
  // default); false: only the separators ", " and ": " (no newlines or
  // indentation; xgrammar's and vLLM's disable_any_whitespace).
  bool any_whitespace = true;

  bool enabled() const { return kind != Kind::kNone; }
};

// Most bytes of a schema, regular expression or grammar, and most choices.
inline constexpr size_t kMaxGrammarSpecBytes = 64 << 10;
inline constexpr size_t kMaxChoices = 1024;

struct GrammarConfig {
  // Threads one compilation may use to precompute token masks.
  int compile_threads = 2;
  // Compiled grammars kept for reuse (by kind and text), in bytes; least
  // recently used dropped first. Failed compiles are not kept.
  int64_t cache_bytes = int64_t{256} << 20;
  // Compilations run on this many workers of their own, so that a slow
  // one never holds more than its caller; at most `max_waiting` more wait
  // for a worker (RESOURCE_EXHAUSTED beyond).
  int max_compiles = 2;
  int max_waiting = 16;
  // A caller waits this long for its grammar, in (0, 24h]. After it:
  // RESOURCE_EXHAUSTED when no worker took the job yet (which is then
  // dropped if nobody else waits for it), else INVALID_ARGUMENT (xgrammar
  // cannot be interrupted, so the compile goes on and its result is
  // cached for the next request with the same text).
  absl::Duration compile_timeout = absl::Seconds(15);
};

class CompiledGrammar;  // grammar.cc

// The vocabulary size `grammar` was compiled for (its masks' width).
int VocabSizeOf(const CompiledGrammar& grammar);

class GrammarCompiler {
 public:
  // `vocab_size`: the model's logit width (at least the tokenizer's; the
  // ids past the tokenizer's vocabulary are never allowed).
  static absl::StatusOr<std::unique_ptr<GrammarCompiler>> Create(
      const Tokenizer& tokenizer, int vocab_size, const GrammarConfig& config);
  // Waits up to 10 s for a compile still running (it would otherwise run
  // on into the process's exit).
  ~GrammarCompiler();

  // The compiled grammar, from the cache when the same spec compiled
  // before. InvalidArgument for a spec that does not parse, is too long,
  // or takes longer than compile_timeout to compile (naming the field the
  // HTTP API takes it from is the caller's job), or kNone;
  // ResourceExhausted when max_waiting compiles are already waiting or no
  // worker was free within compile_timeout.
  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> Compile(
      const StructuredOutput& output);

  int vocab_size() const;

 private:
  struct Impl;
  explicit GrammarCompiler(std::shared_ptr<Impl> impl);
  // Shared with the compile workers, which outlive this object while a
  // compile runs (it cannot be interrupted).
  std::shared_ptr<Impl> impl_;
};

// One sample's position in its grammar.
class GrammarMatcher {
 public:
  // `stop_ids`: the tokens that end the sample; the grammar allows them
  // once its text is complete (and nothing else once nothing else fits).
  GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar,
                 absl::Span<const int32_t> stop_ids);
  ~GrammarMatcher();
  GrammarMatcher(const GrammarMatcher&) = delete;
  GrammarMatcher& operator=(const GrammarMatcher&) = delete;

  // The tokens that may come next: bit (t % 32) of word t / 32 is set when
  // token t is allowed (never a token past the vocabulary). Valid until
  // the next call on this matcher.
  absl::Span<const uint32_t> NextTokenMask();
  // Advances past `token`; false (and no change) when the grammar does
  // not allow it.
  bool Accept(int32_t token);
  // A stop token was accepted: the grammar is done.
  bool IsTerminated() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether token `t` is set in `mask` (as NextTokenMask returns it).
inline bool TokenAllowed(absl::Span<const uint32_t> mask, int32_t t) {
  return t >= 0 && static_cast<size_t>(t) / 32 < mask.size() &&
         (mask[static_cast<size_t>(t) / 32] >> (t % 32) & 1u) != 0;
}

}  // namespace weft

#endif  // WEFT_RUNTIME_GRAMMAR_H_
