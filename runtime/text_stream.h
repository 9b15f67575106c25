// One sequence's output text as it streams: incremental detokenization plus
// the stop conditions (stop tokens, stop strings, min / max tokens).
//
// Stop strings are matched exactly on the decoded text (whole UTF-8
// characters, after skip_special_tokens), as vLLM does:
//   - a match must end in text added by the current token, so text is
//     searched once: the new text plus the held-back tail before it. A match
//     may begin in that tail, i.e. span tokens;
//   - text is held back only while it could still become a stop string: the
//     longest suffix that is a proper prefix of some stop string, so at most
//     (longest stop string - 1) bytes; everything before it is emitted;
//   - when several stop strings match in the same new text, the one that
//     ends first wins (ties: the one that starts first) - where a stream
//     checked one character at a time would have stopped. (vLLM takes the
//     first in the request's list instead.)
//   - stop strings match only from the min_tokens-th token on (vLLM): a
//     match must end in text of that token or a later one.
#ifndef WEFT_RUNTIME_TEXT_STREAM_H_
#define WEFT_RUNTIME_TEXT_STREAM_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/detokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace weft {

enum class FinishReason { kStop, kLength, kCancelled, kError };

inline constexpr int kMaxStopStrings = 16;
// Each is looked up for every generated token (and banned while min_tokens
// holds): an unbounded list is one request slowing the whole batch.
inline constexpr int kMaxStopTokenIds = 1024;
inline constexpr int kMaxStopStringBytes = 256;

struct StoppingParams {
  int max_tokens = 16;  // >= 1
  // Stop tokens do not end the sequence before this many other tokens were
  // generated, nor stop strings before this many tokens; [0, max_tokens].
  int min_tokens = 0;
  // Do not stop at the tokenizer's EOS / stop ids (stop_token_ids still
  // stop).
  bool ignore_eos = false;
  // In addition to the tokenizer's EOS / stop ids (unless ignore_eos); at
  // most kMaxStopTokenIds.
  std::vector<int32_t> stop_token_ids = {};
  // At most 16, each non-empty valid UTF-8 of at most 256 bytes.
  std::vector<std::string> stop = {};
  // Emit the matched stop string, or the stop token's text (nothing for a
  // special token under skip_special_tokens), before finishing.
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;

  // InvalidArgument naming the offending field.
  absl::Status Validate() const;
};

class TextStream {
 public:
  // `tokenizer` must outlive the stream; `params` must have passed
  // Validate().
  TextStream(const Tokenizer& tokenizer, const StoppingParams& params);

  struct Update {
    // New text safe to emit now: whole UTF-8 characters only, held back
    // while it could still become a stop string.
    std::string text;
    std::optional<FinishReason> finish;  // set when this token ends it
    // The stop string, or the stop token's text (special tokens included),
    // that ended the sequence; empty otherwise.
    std::string stop_reason;
    // The stop token that ended the sequence, unless it is the tokenizer's
    // EOS (checked first, as vLLM does: it reports stop_token_ids and the
    // generation config's other EOS ids by id, nothing for EOS); -1
    // otherwise.
    int32_t stop_token = -1;
    bool stop_string = false;  // stop_reason is a matched stop string
  };

  // Called for each generated token in order (never again after an Update
  // with `finish`: later calls return an empty Update).
  //   - A stop token (EOS and the tokenizer's stop ids unless ignore_eos,
  //     and params.stop_token_ids) ends with kStop once at least min_tokens
  //     tokens came before it; its text is not emitted (unless
  //     include_stop_str_in_output). Earlier, it is an ordinary token.
  //   - A stop string ends with kStop; the text is cut right before it (or
  //     after it, include_stop_str_in_output).
  //   - The max_tokens-th token ends with kLength; all remaining text is
  //     emitted, unless a stop condition matched first.
  // At a finish, the held-back text is emitted with the update (an
  // unfinished character as U+FFFD).
  Update Add(int32_t token);

  // At the end without a finish (e.g. cancelled): the text still held back.
  // Ends the stream.
  std::string Flush();

  // Tokens given to Add so far, the stop token included.
  int num_tokens() const { return num_tokens_; }

 private:
  struct StopMatch {
    size_t begin;  // byte offsets into pending_
    size_t end;
    const std::string* stop;
  };

  bool IsStopToken(int32_t token) const;
  // The first-ending stop string match in pending_ that ends after
  // checked_, if any.
  std::optional<StopMatch> FindStopString() const;
  // Length of the longest suffix of pending_ that is a proper prefix of a
  // stop string.
  size_t HeldBackLength() const;
  // All pending text plus the detokenizer's unfinished bytes.
  std::string TakeAll();
  Update Finish(Update update, FinishReason reason);

  const Tokenizer& tokenizer_;
  StoppingParams params_;
  IncrementalDetokenizer detokenizer_;
  std::vector<int32_t> stop_token_ids_;
  std::string pending_;  // decoded, not yet emitted
  size_t checked_ = 0;   // pending_[0, checked_) was already searched
  int num_tokens_ = 0;
  bool done_ = false;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_TEXT_STREAM_H_
