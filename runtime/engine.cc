#include "runtime/engine.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <optional>
#include <random>
#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace weft {

struct RequestState {
  Request request;
  std::shared_ptr<EventSink> sink;
  absl::Time arrival;
  uint64_t seed = 0;
  std::vector<std::unique_ptr<Sequence>> seqs;  // by sample index
  std::vector<SampleResult> results;
  int num_ended = 0;
  bool ended = false;
  Usage usage;
  std::optional<absl::Time> first_scheduled, first_token, last_token;
  std::vector<absl::Duration> inter_token;
  std::vector<SampledToken> pending_prompt_logprobs;
  // Prompt positions already scored: a prompt recomputed after preemption
  // is not scored twice.
  int next_prompt_logprob_position = 0;
  // The tokens that end a sample: EOS (unless ignore_eos) and the
  // request's stop_token_ids. Banned from sampling until min_tokens are
  // out.
  std::vector<int32_t> stop_ids;
};

struct Engine::AtomicStats {
  std::atomic<int> num_waiting{0}, num_running{0};
  std::atomic<int> kv_used{0}, kv_free{0};
  std::atomic<int64_t> cache_queried{0}, cache_hits{0}, preemptions{0},
      steps{0}, prompt_tokens{0}, generated{0}, finished{0}, failed{0},
      schedule_ns{0}, execute_ns{0}, sample_ns{0}, postprocess_ns{0};
};

namespace {

// The engine's clock for every duration it reports (queue time, time to
// first token, inter-token gaps, end to end, step phases): monotonic, so
// that a step of the wall clock (NTP, a resumed VM) never makes one
// negative or huge. Only differences of its values mean anything.
absl::Time Now() {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

// A sample's result with only its reason (length, cancel).
SampleResult EndedWith(FinishReason reason) {
  SampleResult result;
  result.reason = reason;
  return result;
}

// Whether `allowed` (a grammar's mask) lets through a token not in `banned`.
bool AllowsAnyBut(absl::Span<const uint32_t> allowed,
                  absl::Span<const int32_t> banned) {
  size_t allowed_count = 0;
  for (uint32_t word : allowed) allowed_count += std::popcount(word);
  size_t banned_allowed = 0;
  for (size_t i = 0; i < banned.size(); ++i) {
    // Each token counted once, however often it is listed.
    if (std::find(banned.begin(), banned.begin() + i, banned[i]) ==
            banned.begin() + i &&
        TokenAllowed(allowed, banned[i])) {
      ++banned_allowed;
    }
  }
  return allowed_count > banned_allowed;
}

uint64_t RandomSeed() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace

absl::Status EngineConfig::Validate() const {
  if (auto s = scheduler.Validate(); !s.ok()) return s;
  if (max_live_requests < 1 || max_model_len < 0 || max_n < 1 ||
      sampling_threads < 0 || parallel_sampling_min_logits < 0) {
    return absl::InvalidArgumentError(
        "engine: max_live_requests and max_n must be positive, "
        "max_model_len, sampling_threads and parallel_sampling_min_logits "
        "non-negative");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(
    LlamaModel* model, Backend* backend, const Tokenizer* tokenizer,
    const EngineConfig& config) {
  return Create(std::make_unique<ModelRunner>(model, backend), tokenizer,
                config);
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(
    std::unique_ptr<StepExecutor> executor, const Tokenizer* tokenizer,
    const EngineConfig& config) {
  if (auto s = config.Validate(); !s.ok()) return s;
  const ModelPlan& plan = executor->plan();
  if (config.scheduler.max_num_batched_tokens > plan.max_num_tokens ||
      config.scheduler.max_num_logit_rows > plan.max_num_logits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "engine: the scheduler's budgets (", config.scheduler.max_num_batched_tokens,
        " tokens, ", config.scheduler.max_num_logit_rows,
        " logit rows) exceed what the model planned for (", plan.max_num_tokens,
        ", ", plan.max_num_logits, ")"));
  }
  int max_len = std::min(executor->max_position_embeddings(),
                         plan.num_kv_blocks * plan.block_size);
  if (config.max_model_len > 0) max_len = std::min(max_len, config.max_model_len);
  return std::unique_ptr<Engine>(
      new Engine(std::move(executor), tokenizer, config, max_len));
}

Engine::Engine(std::unique_ptr<StepExecutor> executor,
               const Tokenizer* tokenizer, const EngineConfig& config,
               int max_model_len)
    : executor_(std::move(executor)),
      tokenizer_(tokenizer),
      config_(config),
      max_model_len_(max_model_len),
      blocks_(executor_->plan().num_kv_blocks, executor_->plan().block_size,
              config.scheduler.enable_prefix_caching),
      scheduler_(config.scheduler, &blocks_),
      queue_(config.max_live_requests),
      stats_(std::make_unique<AtomicStats>()) {
  int threads = config.sampling_threads;
  if (threads == 0) {
    threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()),
                         1, 16);
  }
  // Workers that sleep at once: the pool runs once a step, and a spinning
  // worker would take a core from the next forward pass on a CPU backend.
  if (threads > 1) {
    sampling_pool_ = std::make_unique<ThreadPool>(threads, /*spin_iterations=*/0);
  }
  PublishStats();
}

Engine::~Engine() { Stop(); }

absl::Status Engine::Validate(const Request& r) const {
  if (r.id.empty()) return absl::InvalidArgumentError("id: must not be empty");
  if (r.prompt_ids.empty()) {
    return absl::InvalidArgumentError("prompt: must have at least one token");
  }
  const int vocab = executor_->vocab_size();
  for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
    if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt_ids[", i, "]: ", r.prompt_ids[i],
                       " is outside the vocabulary of ", vocab));
    }
  }
  if (auto s = r.sampling.Validate(vocab); !s.ok()) return s;
  if (r.sampling.n > config_.scheduler.max_num_seqs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "n: ", r.sampling.n, " samples exceed max_num_seqs (",
        config_.scheduler.max_num_seqs, ")"));
  }
  if (r.sampling.n > config_.max_n) {
    return absl::InvalidArgumentError(
        absl::StrCat("n: at most ", config_.max_n, " samples, got ", r.sampling.n));
  }
  if (auto s = r.stopping.Validate(); !s.ok()) return s;
  if (r.grammar != nullptr) {
    if (tokenizer_->stop_ids().empty()) {
      return absl::InvalidArgumentError(
          "structured output: the tokenizer has no stop token to end the "
          "grammar with");
    }
    if (VocabSizeOf(*r.grammar) != vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          "structured output: the grammar was compiled for a vocabulary of ",
          VocabSizeOf(*r.grammar), ", not ", vocab));
    }
  }
  const int64_t total = int64_t{static_cast<int64_t>(r.prompt_ids.size())} +
                        r.stopping.max_tokens;
  if (total > max_model_len_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens: the prompt (", r.prompt_ids.size(), " tokens) plus max_tokens (",
        r.stopping.max_tokens, ") exceeds the context of ", max_model_len_,
        " tokens"));
  }
  return absl::OkStatus();
}

absl::Status Engine::Submit(Request request, std::shared_ptr<EventSink> sink) {
  std::vector<std::pair<Request, std::shared_ptr<EventSink>>> one;
  one.emplace_back(std::move(request), std::move(sink));
  return SubmitAll(std::move(one));
}

absl::Status Engine::SubmitAll(
    std::vector<std::pair<Request, std::shared_ptr<EventSink>>> requests) {
  for (const auto& [request, sink] : requests) {
    if (sink == nullptr) return absl::InvalidArgumentError("sink: missing");
    if (auto s = Validate(request); !s.ok()) return s;
  }
  std::vector<Submission> submissions;
  submissions.reserve(requests.size());
  const absl::Time arrival = Now();
  for (auto& [request, sink] : requests) {
    Submission submission;
    submission.seed = request.sampling.seed.value_or(RandomSeed());
    submission.request = std::move(request);
    submission.sink = std::move(sink);
    submission.arrival = arrival;
    submissions.push_back(std::move(submission));
  }
  return queue_.PushAll(std::move(submissions));
}

void Engine::Cancel(const std::string& id) { queue_.Cancel(id); }

void Engine::Start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] {
    while (running_.load(std::memory_order_relaxed)) {
      if (!Step()) queue_.WaitForWork(absl::Milliseconds(50));
    }
  });
}

void Engine::Stop() {
  running_ = false;
  std::vector<Submission> undrained = queue_.Close();
  if (thread_.joinable()) thread_.join();
  const absl::Status stopped = absl::UnavailableError("the engine stopped");
  for (Submission& s : undrained) {
    s.sink->OnError(stopped);
    queue_.Ended(s.request.id);
  }
  for (auto& [id, request] : requests_) {
    if (!request->ended) FailRequest(request.get(), stopped);
  }
  requests_.clear();
  PublishStats();
}

void Engine::DrainInbox() {
  std::vector<Submission> submissions;
  std::vector<std::string> cancels;
  queue_.Drain(&submissions, &cancels);
  for (Submission& s : submissions) Admit(std::move(s));
  for (const std::string& id : cancels) {
    auto it = requests_.find(id);
    if (it != requests_.end() && !it->second->ended) {
      CancelRequest(it->second.get());
    }
  }
}

void Engine::Admit(Submission submission) {
  auto state = std::make_unique<RequestState>();
  state->request = std::move(submission.request);
  state->sink = std::move(submission.sink);
  state->arrival = submission.arrival;
  state->seed = submission.seed;
  const Request& r = state->request;
  state->seqs.resize(r.sampling.n);
  state->results.resize(r.sampling.n);
  state->usage.prompt_tokens = static_cast<int>(r.prompt_ids.size());
  if (!r.stopping.ignore_eos) state->stop_ids = tokenizer_->stop_ids();
  state->stop_ids.insert(state->stop_ids.end(),
                         r.stopping.stop_token_ids.begin(),
                         r.stopping.stop_token_ids.end());

  auto seq = std::make_unique<Sequence>();
  seq->seq_id = next_seq_id_++;
  seq->arrival_order = next_arrival_++;
  seq->priority = r.priority;
  seq->request = state.get();
  seq->tokens = r.prompt_ids;
  seq->num_prompt_tokens = static_cast<int>(r.prompt_ids.size());
  seq->num_forks_pending = r.sampling.n - 1;
  seq->prompt_logprobs = r.sampling.prompt_logprobs >= 0;
  seq->sampler = std::make_unique<SequenceSampler>(r.sampling, state->seed, 0);
  try {
    seq->grammar = NewGrammarMatcher(*state);
  } catch (const std::exception& e) {
    stats_->failed++;
    state->sink->OnError(absl::InternalError(
        absl::StrCat("request failed to start its grammar: ", e.what())));
    queue_.Ended(r.id);
    return;
  }
  seq->text = std::make_unique<TextStream>(*tokenizer_, r.stopping);
  scheduler_.AddWaiting(seq.get());
  state->seqs[0] = std::move(seq);
  const std::string id = r.id;
  requests_[id] = std::move(state);
}

bool Engine::Step() {
  const absl::Time step_start = Now();
  DrainInbox();
  Batch batch = scheduler_.Schedule();
  stats_->preemptions += batch.preempted.size();
  if (batch.empty()) {
    absl::erase_if(requests_, [](const auto& entry) { return entry.second->ended; });
    PublishStats();
    return !batch.preempted.empty();
  }
  stats_->steps++;
  const absl::Time scheduled = Now();
  const bool only_argmax = OnlyArgMax(batch);
  const absl::Status status = only_argmax ? executor_->ExecuteArgMax(batch)
                                          : executor_->Execute(batch);
  const absl::Time executed = Now();
  if (!status.ok()) {
    // The step failed as a whole: end its requests, keep serving the rest.
    // Blocks cached for this step may hold KV that was never written.
    for (const ScheduledSequence& s : batch.seqs) {
      if (!s.seq->request->ended) FailRequest(s.seq->request, status);
    }
    blocks_.DropUnreferencedCachedBlocks();
  } else {
    Advance(batch, scheduled);
    const absl::Time advanced = Now();
    SampleBatch(batch, only_argmax);
    const absl::Time sampled = Now();
    Emit();
    stats_->sample_ns += absl::ToInt64Nanoseconds(sampled - advanced);
    stats_->postprocess_ns +=
        absl::ToInt64Nanoseconds((advanced - executed) + (Now() - sampled));
  }
  stats_->schedule_ns += absl::ToInt64Nanoseconds(scheduled - step_start);
  stats_->execute_ns += absl::ToInt64Nanoseconds(executed - scheduled);
  absl::erase_if(requests_, [](const auto& entry) { return entry.second->ended; });
  PublishStats();
  return true;
}

void Engine::Advance(const Batch& batch, absl::Time scheduled_at) {
  for (const ScheduledSequence& s : batch.seqs) {
    Sequence* seq = s.seq;
    RequestState* request = seq->request;
    if (request->ended || seq->status == SequenceStatus::kFinished) continue;
    if (!request->first_scheduled) {
      // When the step that first ran it was formed, so queue time ends
      // where its first forward pass begins.
      request->first_scheduled = scheduled_at;
      request->usage.cached_prompt_tokens = seq->num_computed_tokens;
    }
    if (seq->prompt_logprobs && seq->in_prefill()) AddPromptLogprobs(s);
    if (seq->in_prefill()) {
      stats_->prompt_tokens += std::min(
          s.num_new_tokens, seq->num_prompt_tokens - seq->num_computed_tokens);
    }
    seq->num_computed_tokens += s.num_new_tokens;
    // Scored once: a recompute after preemption is an ordinary prefill.
    if (!seq->in_prefill()) seq->prompt_logprobs = false;
  }
}

bool Engine::StopsBanned(const Sequence& seq) const {
  const RequestState& request = *seq.request;
  return seq.num_output_tokens() < request.request.stopping.min_tokens &&
         !request.stop_ids.empty();
}

bool Engine::OnlyArgMax(const Batch& batch) const {
  for (const ScheduledSequence& s : batch.seqs) {
    const Sequence& seq = *s.seq;
    if (seq.prompt_logprobs && seq.in_prefill()) return false;  // scored
    // Forked samples share the parent's parameters and, like it, have no
    // output yet.
    if (s.samples && (seq.sampler == nullptr || seq.grammar != nullptr ||
                      !seq.sampler->OnlyArgMax(StopsBanned(seq)))) {
      return false;
    }
  }
  return true;
}

void Engine::SampleBatch(const Batch& batch, bool only_argmax) {
  sampled_.clear();
  pending_.clear();
  for (const ScheduledSequence& s : batch.seqs) {
    Sequence* seq = s.seq;
    RequestState* request = seq->request;
    if (!s.samples || request->ended ||
        seq->status == SequenceStatus::kFinished) {
      continue;
    }
    const int row = s.first_logit_row + s.num_logit_rows - 1;
    const absl::Span<const float> logits =
        only_argmax ? absl::Span<const float>() : executor_->logits_row(row);
    try {
      // n > 1: the prompt is done; its samples fork off and each draws its
      // first token from these same logits.
      if (seq->num_forks_pending > 0) ForkSamples(seq);
      for (auto& sample : request->seqs) {
        if (sample != nullptr &&
            (sample.get() == seq || sample->num_output_tokens() == 0)) {
          // OnlyArgMax held: Sample would return the argmax, draw nothing.
          sampled_.push_back(
              {sample.get(),
               only_argmax ? SampledToken{executor_->argmax_row(row), 0.0f, {}}
                           : SampledToken{}});
          if (!only_argmax) pending_.push_back({sampled_.size() - 1, logits, {}});
        }
      }
    } catch (const std::exception& e) {
      FailRequest(request, absl::InternalError(absl::StrCat(
                               "request failed while sampling: ", e.what())));
    }
  }
  DrawPending();
}

void Engine::DrawPending() {
  // Each pending sample touches only its own sampler and reads its own
  // sequence, so they may be drawn on several threads.
  auto draw = [this](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      PendingSample& p = pending_[i];
      SampledStep& step = sampled_[p.index];
      try {
        step.token = Sample(step.seq, p.logits);
      } catch (const std::exception& e) {
        p.error = e.what();
        if (p.error.empty()) p.error = "exception";
      }
    }
  };
  int64_t logits = 0;
  for (const PendingSample& p : pending_) logits += p.logits.size();
  if (sampling_pool_ != nullptr && pending_.size() > 1 &&
      logits >= config_.parallel_sampling_min_logits) {
    sampling_pool_->ParallelFor(static_cast<int64_t>(pending_.size()), draw);
  } else {
    draw(0, static_cast<int64_t>(pending_.size()));
  }
  for (const PendingSample& p : pending_) {
    RequestState* request = sampled_[p.index].seq->request;
    if (!p.error.empty() && !request->ended) {
      FailRequest(request, absl::InternalError(absl::StrCat(
                               "request failed while sampling: ", p.error)));
    }
  }
}

void Engine::Emit() {
  const absl::Time now = Now();  // the step's tokens share one time
  for (SampledStep& step : sampled_) {
    if (step.seq->request->ended) continue;
    try {
      EmitToken(step.seq, std::move(step.token), now);
    } catch (const std::exception& e) {
      FailRequest(step.seq->request,
                  absl::InternalError(absl::StrCat(
                      "request failed while detokenizing: ", e.what())));
    }
  }
}

void Engine::ForkSamples(Sequence* parent) {
  RequestState* request = parent->request;
  for (int index = 1; index <= parent->num_forks_pending; ++index) {
    auto child = std::make_unique<Sequence>();
    child->seq_id = next_seq_id_++;
    child->arrival_order = parent->arrival_order;
    child->priority = parent->priority;
    child->request = request;
    child->index = index;
    child->tokens = parent->tokens;
    child->num_prompt_tokens = parent->num_prompt_tokens;
    child->num_computed_tokens = parent->num_computed_tokens;
    child->blocks = blocks_.Fork(parent->blocks);
    child->sampler = std::make_unique<SequenceSampler>(request->request.sampling,
                                                       request->seed, index);
    child->grammar = NewGrammarMatcher(*request);
    child->text = std::make_unique<TextStream>(*tokenizer_, request->request.stopping);
    scheduler_.AddRunning(child.get());
    request->seqs[index] = std::move(child);
  }
  parent->num_forks_pending = 0;
}

void Engine::AddPromptLogprobs(const ScheduledSequence& s) {
  const Sequence& seq = *s.seq;
  const int k = seq.request->request.sampling.prompt_logprobs;
  for (int r = 0; r < s.num_logit_rows; ++r) {
    const int position = seq.num_computed_tokens + s.num_new_tokens -
                         s.num_logit_rows + r;
    if (position + 1 >= seq.num_prompt_tokens) break;
    if (position < seq.request->next_prompt_logprob_position) continue;
    seq.request->next_prompt_logprob_position = position + 1;
    seq.request->pending_prompt_logprobs.push_back(ScoreToken(
        executor_->logits_row(s.first_logit_row + r), seq.tokens[position + 1], k));
  }
}

std::unique_ptr<GrammarMatcher> Engine::NewGrammarMatcher(
    const RequestState& request) const {
  if (request.request.grammar == nullptr) return nullptr;
  // The tokenizer's stop tokens end the grammar, as in vLLM: the request's
  // stop_token_ids may be ordinary text tokens the grammar must be free
  // to write (they still stop the stream when drawn), and with ignore_eos
  // the grammar still ends at EOS (EmitToken).
  return std::make_unique<GrammarMatcher>(request.request.grammar,
                                          tokenizer_->stop_ids());
}

SampledToken Engine::Sample(Sequence* seq, absl::Span<const float> logits) {
  const RequestState* request = seq->request;
  const absl::Span<const int32_t> tokens(seq->tokens);
  bool ban_stops = StopsBanned(*seq);
  absl::Span<const uint32_t> allowed;
  if (seq->grammar != nullptr) {
    allowed = seq->grammar->NextTokenMask();
    // The min_tokens ban never leaves the grammar nothing to write: a
    // grammar whose text is complete allows only the stop tokens, and then
    // ends the sample before min_tokens (as would a grammar that needs a
    // token of stop_token_ids next).
    if (ban_stops && !AllowsAnyBut(allowed, request->stop_ids)) {
      ban_stops = false;
    }
  }
  SampledToken sampled = seq->sampler->Sample(
      logits, tokens.subspan(0, seq->num_prompt_tokens),
      tokens.subspan(seq->num_prompt_tokens),
      ban_stops ? absl::Span<const int32_t>(request->stop_ids)
                : absl::Span<const int32_t>(),
      allowed);
  if (seq->grammar != nullptr && !seq->grammar->Accept(sampled.token)) {
    // Only when every allowed token's logit is -inf or NaN.
    throw std::runtime_error(absl::StrCat(
        "the structured output's grammar allows no token the model can "
        "produce here (drew ", sampled.token, ")"));
  }
  return sampled;
}

void Engine::EmitToken(Sequence* seq, SampledToken sampled, absl::Time now) {
  RequestState* request = seq->request;
  const int32_t sampled_token = sampled.token;
  seq->tokens.push_back(sampled.token);
  request->usage.completion_tokens++;
  stats_->generated++;
  // The grammar took a stop token: its text is complete, whatever the
  // stream would make of the token (before min_tokens, or with ignore_eos,
  // it would be text). The sample ends on it as on any stop token.
  const bool grammar_done =
      seq->grammar != nullptr && seq->grammar->IsTerminated();
  TextStream::Update update;
  if (grammar_done) {
    update.text = seq->text->Flush();
    update.finish = FinishReason::kStop;
    update.stop_reason =
        tokenizer_->Decode({&sampled_token, 1}, /*skip_special_tokens=*/false);
    if (request->request.stopping.include_stop_str_in_output) {
      update.text += update.stop_reason;  // as TextStream shows a stop token
    }
    // As TextStream reports stops: the tokenizer's EOS has no stop token.
    if (request->request.stopping.ignore_eos ||
        sampled_token != tokenizer_->eos_id()) {
      update.stop_token = sampled_token;
    }
  } else {
    update = seq->text->Add(sampled.token);
  }

  Delta delta;
  delta.index = seq->index;
  delta.token_ids.push_back(sampled.token);
  delta.text = std::move(update.text);
  if (request->request.sampling.logprobs >= 0) {
    delta.logprobs.push_back(std::move(sampled));
  }
  delta.prompt_logprobs = std::move(request->pending_prompt_logprobs);
  request->pending_prompt_logprobs.clear();
  if (!request->first_token) request->first_token = now;
  if (seq->index == 0) {
    if (request->last_token) {
      request->inter_token.push_back(now - *request->last_token);
    }
    request->last_token = now;
  }
  request->sink->OnDelta(std::move(delta));

  if (update.finish) {
    SampleResult result;
    result.reason = *update.finish;
    result.stop_reason = std::move(update.stop_reason);
    result.stop_token = update.stop_token;
    result.stop_string = update.stop_string;
    FinishSequence(seq, std::move(result));
  } else if (static_cast<int>(seq->tokens.size()) >= max_model_len_) {
    FlushText(seq);
    FinishSequence(seq, EndedWith(FinishReason::kLength));
  }
}

void Engine::FinishSequence(Sequence* seq, SampleResult result) {
  RequestState* request = seq->request;
  result.num_tokens = seq->num_output_tokens();
  request->results[seq->index] = result;
  scheduler_.Remove(seq);
  if (++request->num_ended < static_cast<int>(request->results.size())) {
    // The others go on: this sample's end is reported now (a stream's
    // finish_reason per choice, as vLLM sends it), not with the last one's.
    Delta delta;
    delta.index = seq->index;
    delta.finished = std::move(result);
    request->sink->OnDelta(std::move(delta));
    return;
  }
  Finished finished;
  finished.samples = request->results;
  finished.usage = request->usage;
  const absl::Time now = Now();
  finished.timings.queue_time =
      request->first_scheduled.value_or(now) - request->arrival;
  finished.timings.time_to_first_token =
      request->first_token.value_or(now) - request->arrival;
  finished.timings.end_to_end = now - request->arrival;
  finished.timings.inter_token = std::move(request->inter_token);
  request->sink->OnFinished(std::move(finished));
  stats_->finished++;
  EndRequest(request);
}

void Engine::CancelRequest(RequestState* request) {
  // Samples not forked yet end here; the last live one sends Finished.
  for (size_t i = 0; i < request->seqs.size(); ++i) {
    if (request->seqs[i] == nullptr) {
      request->results[i].reason = FinishReason::kCancelled;
      ++request->num_ended;
    }
  }
  for (auto& seq : request->seqs) {
    if (seq != nullptr && seq->status != SequenceStatus::kFinished) {
      seq->num_forks_pending = 0;
      FlushText(seq.get());
      FinishSequence(seq.get(), EndedWith(FinishReason::kCancelled));
    }
  }
}

void Engine::FlushText(Sequence* seq) {
  // Text held back (a possible start of a stop string, an unfinished
  // character) goes out before the sample ends without a finish of the
  // text stream's own, so that its text is that of its tokens.
  if (seq->text == nullptr) return;
  Delta delta;
  delta.index = seq->index;
  delta.text = seq->text->Flush();
  if (!delta.text.empty()) seq->request->sink->OnDelta(std::move(delta));
}

void Engine::FailRequest(RequestState* request, absl::Status status) {
  for (auto& seq : request->seqs) {
    if (seq != nullptr && seq->status != SequenceStatus::kFinished) {
      scheduler_.Remove(seq.get());
    }
  }
  request->sink->OnError(std::move(status));
  stats_->failed++;
  EndRequest(request);
}

void Engine::EndRequest(RequestState* request) {
  request->ended = true;
  queue_.Ended(request->request.id);
}

void Engine::PublishStats() {
  stats_->num_waiting = scheduler_.num_waiting();
  stats_->num_running = scheduler_.num_running();
  stats_->kv_used = blocks_.num_used_blocks();
  stats_->kv_free = blocks_.num_free_blocks();
  stats_->cache_queried = blocks_.prefix_cache_queries();
  stats_->cache_hits = blocks_.prefix_cache_hits();
}

EngineStats Engine::stats() const {
  EngineStats s;
  s.num_waiting = stats_->num_waiting;
  s.num_running = stats_->num_running;
  // From the queue itself, not the last step's snapshot: a request counts
  // as live from the moment Submit() accepts it (drain waits on this).
  s.num_live_requests = queue_.num_live();
  s.kv_blocks_total = blocks_.num_blocks();
  s.kv_blocks_used = stats_->kv_used;
  s.kv_blocks_free = stats_->kv_free;
  s.prefix_cache_queried_tokens = stats_->cache_queried;
  s.prefix_cache_hit_tokens = stats_->cache_hits;
  s.num_preemptions = stats_->preemptions;
  s.num_steps = stats_->steps;
  s.prompt_tokens_computed = stats_->prompt_tokens;
  s.generated_tokens = stats_->generated;
  s.requests_finished = stats_->finished;
  s.requests_failed = stats_->failed;
  s.schedule_seconds = stats_->schedule_ns * 1e-9;
  s.execute_seconds = stats_->execute_ns * 1e-9;
  s.sample_seconds = stats_->sample_ns * 1e-9;
  s.postprocess_seconds = stats_->postprocess_ns * 1e-9;
  return s;
}

}  // namespace weft
