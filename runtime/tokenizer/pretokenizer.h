// Pre-tokenizers as Hugging Face `tokenizers` runs them: each step splits
// every piece produced by the previous step (so a regex's lookahead never
// sees past its piece), and empty pieces are dropped.
//
// Byte-level families differ only in their steps:
//   GPT-2:   ByteLevel(use_regex)                     (kGpt2Pattern)
//   SmolLM2: Digits(individual) + ByteLevel(use_regex)
//   Llama 3: Split(kLlama3Pattern, Isolated) + ByteLevel(no regex)
//   Qwen2:   Split(kQwen2Pattern, Isolated) + ByteLevel(no regex)
// SentencePiece-style files use Metaspace, or no pre-tokenizer at all and
// a Prepend/Replace normalizer.
#ifndef WEFT_RUNTIME_TOKENIZER_PRETOKENIZER_H_
#define WEFT_RUNTIME_TOKENIZER_PRETOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "runtime/tokenizer/regex.h"

namespace weft::tokenizer_internal {

inline constexpr absl::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+)"
    R"(|\s+(?!\S)|\s+)";
inline constexpr absl::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr absl::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct PreToken {
  std::string text;
  // Starts at byte 0 of the text given to Encode (Metaspace's "first"
  // prepend scheme adds "▁" only there).
  bool at_text_start = false;
};

// What happens to the matched part of a piece (HF SplitDelimiterBehavior).
enum class SplitBehavior {
  kRemoved,
  kIsolated,
  kMergedWithPrevious,
  kMergedWithNext,
  kContiguous,
};

enum class PrependScheme { kAlways, kFirst, kNever };

class PreTokenizer {
 public:
  void AddSplit(std::unique_ptr<Regex> pattern, SplitBehavior behavior,
                bool invert);
  // Maps bytes to the GPT-2 alphabet; `use_regex` first splits with
  // kGpt2Pattern.
  void AddByteLevel(bool add_prefix_space, bool use_regex);
  // Splits off numeric characters (general category N*), one by one when
  // `individual`, else in runs.
  void AddDigits(bool individual);
  // Replaces ' ' with `replacement`, prepends it per `scheme`, and when
  // `split` splits before every `replacement`.
  void AddMetaspace(char32_t replacement, PrependScheme scheme, bool split);

  bool empty() const { return steps_.empty(); }
  void Run(std::vector<PreToken>* pieces) const;

 private:
  enum class Kind { kSplit, kByteLevel, kDigits, kMetaspace };
  struct Step {
    Kind kind = Kind::kSplit;
    std::shared_ptr<const Regex> pattern;  // kSplit, kByteLevel with regex
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;
    bool individual_digits = false;
    char32_t replacement = 0;
    PrependScheme prepend_scheme = PrependScheme::kAlways;
    bool metaspace_split = false;
  };
  void RunStep(const Step& step, const PreToken& piece,
               std::vector<PreToken>* out) const;

  std::vector<Step> steps_;
};

}  // namespace weft::tokenizer_internal

#endif  // WEFT_RUNTIME_TOKENIZER_PRETOKENIZER_H_
