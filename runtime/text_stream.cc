#include "runtime/text_stream.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "runtime/tokenizer/utf8.h"

namespace weft {

absl::Status StoppingParams::Validate() const {
  if (max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be >= 1, got ", max_tokens));
  }
  if (min_tokens < 0 || min_tokens > max_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_tokens must be in [0, max_tokens = ", max_tokens,
                     "], got ", min_tokens));
  }
  if (stop_token_ids.size() > static_cast<size_t>(kMaxStopTokenIds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop_token_ids allows at most ", kMaxStopTokenIds,
                     " ids, got ", stop_token_ids.size()));
  }
  for (int32_t id : stop_token_ids) {
    if (id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop_token_ids must be >= 0, got ", id));
    }
  }
  if (stop.size() > static_cast<size_t>(kMaxStopStrings)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop allows at most ", kMaxStopStrings,
                     " strings, got ", stop.size()));
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "] must not be empty"));
    }
    if (stop[i].size() > static_cast<size_t>(kMaxStopStringBytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "] must be at most ", kMaxStopStringBytes,
                       " bytes, got ", stop[i].size()));
    }
    if (!tokenizer_internal::IsValidUtf8(stop[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "] is not valid UTF-8"));
    }
  }
  return absl::OkStatus();
}

TextStream::TextStream(const Tokenizer& tokenizer,
                       const StoppingParams& params)
    : tokenizer_(tokenizer),
      params_(params),
      detokenizer_(tokenizer, params.skip_special_tokens),
      stop_token_ids_(params.stop_token_ids) {
  if (!params.ignore_eos) {
    if (tokenizer.eos_id() >= 0) stop_token_ids_.push_back(tokenizer.eos_id());
    for (int32_t id : tokenizer.stop_ids()) stop_token_ids_.push_back(id);
  }
}

bool TextStream::IsStopToken(int32_t token) const {
  return std::find(stop_token_ids_.begin(), stop_token_ids_.end(), token) !=
         stop_token_ids_.end();
}

TextStream::Update TextStream::Add(int32_t token) {
  Update update;
  if (done_) return update;
  ++num_tokens_;

  if (IsStopToken(token) && num_tokens_ - 1 >= params_.min_tokens) {
    if (params_.include_stop_str_in_output) pending_ += detokenizer_.Add(token);
    update.text = TakeAll();
    update.stop_reason = tokenizer_.Decode({&token, 1},
                                           /*skip_special_tokens=*/false);
    // vLLM checks the tokenizer's EOS first (no stop reason); every other
    // stop id, the generation config's included, is reported as itself.
    const bool eos = !params_.ignore_eos && token == tokenizer_.eos_id();
    if (!eos) update.stop_token = token;
    return Finish(std::move(update), FinishReason::kStop);
  }

  pending_ += detokenizer_.Add(token);
  if (num_tokens_ >= params_.min_tokens) {
    if (std::optional<StopMatch> match = FindStopString()) {
      const size_t cut =
          params_.include_stop_str_in_output ? match->end : match->begin;
      update.text = pending_.substr(0, cut);
      update.stop_reason = *match->stop;
      update.stop_string = true;
      pending_.clear();
      return Finish(std::move(update), FinishReason::kStop);
    }
  }
  if (num_tokens_ >= params_.max_tokens) {
    update.text = TakeAll();
    return Finish(std::move(update), FinishReason::kLength);
  }

  const size_t emit = pending_.size() - HeldBackLength();
  update.text = pending_.substr(0, emit);
  pending_.erase(0, emit);
  checked_ = pending_.size();
  return update;
}

std::string TextStream::Flush() {
  if (done_) return "";
  done_ = true;
  return TakeAll();
}

std::optional<TextStream::StopMatch> TextStream::FindStopString() const {
  std::optional<StopMatch> best;
  const absl::string_view text = pending_;
  for (const std::string& stop : params_.stop) {
    // Only matches ending in the unsearched text: end > checked_.
    const size_t from =
        checked_ + 1 > stop.size() ? checked_ + 1 - stop.size() : 0;
    const size_t begin = text.find(stop, from);
    if (begin == absl::string_view::npos) continue;
    const size_t end = begin + stop.size();
    if (!best || end < best->end || (end == best->end && begin < best->begin)) {
      best = StopMatch{begin, end, &stop};
    }
  }
  return best;
}

size_t TextStream::HeldBackLength() const {
  const absl::string_view text = pending_;
  size_t held = 0;
  for (const std::string& stop : params_.stop) {
    const size_t longest = std::min(text.size(), stop.size() - 1);
    for (size_t length = longest; length > held; --length) {
      if (absl::EndsWith(text, absl::string_view(stop).substr(0, length))) {
        held = length;
        break;
      }
    }
  }
  return held;
}

std::string TextStream::TakeAll() {
  std::string text = std::move(pending_);
  pending_.clear();
  text += detokenizer_.Flush();
  return text;
}

TextStream::Update TextStream::Finish(Update update, FinishReason reason) {
  update.finish = reason;
  done_ = true;
  return update;
}

}  // namespace weft
