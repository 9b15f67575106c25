// The engine: many requests share one model; each step serves every running
// request. Submit() and Cancel() may be called from any thread; one loop
// thread runs
//   Step() = drain inbox → Schedule() → Execute() → sample → Postprocess()
// where Postprocess appends the sampled tokens, detokenizes, checks stop
// conditions and emits each request's deltas and terminal event to its
// EventSink.
#ifndef WEFT_RUNTIME_ENGINE_H_
#define WEFT_RUNTIME_ENGINE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/block_manager.h"
#include "runtime/model_runner.h"
#include "runtime/request.h"
#include "runtime/request_queue.h"
#include "runtime/scheduler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace weft {

struct EngineConfig {
  SchedulerConfig scheduler;
  int max_live_requests = 1024;  // accepted and not ended; more → RESOURCE_EXHAUSTED
  int max_model_len = 0;         // 0: the model's context (and KV capacity)
  int max_n = 16;                // parallel samples per request
  // Threads that sample a step's rows (each sequence has its own sampler
  // and random stream, so the tokens do not depend on this). 0: the
  // machine's hardware threads, at most 16; 1: on the engine thread.
  int sampling_threads = 0;
  // A step's rows are sampled in parallel only when they hold at least
  // this many logits in all (below it the hand-off costs more than it saves).
  int64_t parallel_sampling_min_logits = int64_t{1} << 17;

  absl::Status Validate() const;
};

// Gauges and counters, readable from any thread.
struct EngineStats {
  int num_waiting = 0;
  int num_running = 0;
  int num_live_requests = 0;
  int kv_blocks_total = 0;
  int kv_blocks_used = 0;
  int kv_blocks_free = 0;
  int64_t prefix_cache_queried_tokens = 0;
  int64_t prefix_cache_hit_tokens = 0;
  int64_t num_preemptions = 0;
  int64_t num_steps = 0;
  int64_t prompt_tokens_computed = 0;
  int64_t generated_tokens = 0;
  int64_t requests_finished = 0;
  int64_t requests_failed = 0;
  // Time spent in each phase of Step(), summed over all steps: draining
  // the inbox and Schedule(); the forward pass; sampling; Postprocess
  // (bookkeeping, detokenization, stop checks, emitting events).
  double schedule_seconds = 0;
  double execute_seconds = 0;
  double sample_seconds = 0;
  double postprocess_seconds = 0;
};

struct RequestState;

class Engine {
 public:
  // `model`, `backend` and `tokenizer` must outlive the engine.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(
      LlamaModel* model, Backend* backend, const Tokenizer* tokenizer,
      const EngineConfig& config);
  // The same over any StepExecutor (benchmarks use one without a model).
  static absl::StatusOr<std::unique_ptr<Engine>> Create(
      std::unique_ptr<StepExecutor> executor, const Tokenizer* tokenizer,
      const EngineConfig& config);
  ~Engine();  // Stop()s

  // Validates and queues `request`; its events go to `sink`. Errors:
  // InvalidArgument naming the field, AlreadyExists, ResourceExhausted,
  // Unavailable after Stop().
  absl::Status Submit(Request request, std::shared_ptr<EventSink> sink);
  // Several requests (a completions call with several prompts), admitted
  // all together or not at all: validated first, then queued at once.
  absl::Status SubmitAll(
      std::vector<std::pair<Request, std::shared_ptr<EventSink>>> requests);
  // Ends the request with FinishReason::kCancelled within one step.
  void Cancel(const std::string& id);

  // Runs Step() on a loop thread until Stop().
  void Start();
  // Stops the loop; every request still live ends with Unavailable.
  void Stop();
  // One iteration on the calling thread (tests use it without Start()).
  // Returns false when there was nothing to do.
  bool Step();

  EngineStats stats() const;
  const EngineConfig& config() const { return config_; }
  int max_model_len() const { return max_model_len_; }

 private:
  Engine(std::unique_ptr<StepExecutor> executor, const Tokenizer* tokenizer,
         const EngineConfig& config, int max_model_len);

  absl::Status Validate(const Request& request) const;
  void DrainInbox();
  void Admit(Submission submission);
  // Postprocess, before sampling: the scheduled tokens are now computed.
  // `scheduled_at`: when Schedule() formed the batch.
  void Advance(const Batch& batch, absl::Time scheduled_at);
  // Samples every sequence whose chunk reached its end (forking n > 1
  // requests first) into sampled_.
  // Whether every logits row of `batch` is wanted only for its argmax:
  // each sequence that samples would take SequenceSampler::OnlyArgMax, and
  // none scores its prompt. Then the step runs ExecuteArgMax.
  bool OnlyArgMax(const Batch& batch) const;
  void SampleBatch(const Batch& batch, bool only_argmax);
  // Draws pending_ (on sampling_pool_ when the step is large enough), then
  // fails the requests whose sampler threw.
  void DrawPending();
  // Whether seq's stop tokens are banned now (min_tokens not reached).
  bool StopsBanned(const Sequence& seq) const;
  // Draws seq's next token (with its grammar's mask, which it then
  // advances). Throws when the grammar rejects the token drawn.
  SampledToken Sample(Sequence* seq, absl::Span<const float> logits);
  // Null for a request without structured output.
  std::unique_ptr<GrammarMatcher> NewGrammarMatcher(
      const RequestState& request) const;
  // Postprocess, after sampling: appends each sampled token, detokenizes,
  // checks stop conditions and emits.
  void Emit();
  void EmitToken(Sequence* seq, SampledToken sampled, absl::Time now);
  void ForkSamples(Sequence* parent);
  void AddPromptLogprobs(const ScheduledSequence& s);
  // Sends the text `seq`'s stream still holds back (a sample ending by
  // cancel or by the context's end, not by a finish of its stream).
  void FlushText(Sequence* seq);
  // Ends one sample with `result` (its num_tokens filled in here).
  void FinishSequence(Sequence* seq, SampleResult result);
  void EndRequest(RequestState* request);  // after its terminal event
  void FailRequest(RequestState* request, absl::Status status);
  void CancelRequest(RequestState* request);
  void PublishStats();

  std::unique_ptr<StepExecutor> executor_;
  const Tokenizer* tokenizer_;
  EngineConfig config_;
  int max_model_len_;
  BlockManager blocks_;
  Scheduler scheduler_;
  RequestQueue queue_;

  // Engine-thread state.
  absl::flat_hash_map<std::string, std::unique_ptr<RequestState>> requests_;
  struct SampledStep {
    Sequence* seq;
    SampledToken token;
  };
  std::vector<SampledStep> sampled_;  // this step's samples, reused
  // Entries of sampled_ still to be drawn by their sampler, from `logits`;
  // `error` set when that throws.
  struct PendingSample {
    size_t index;
    absl::Span<const float> logits;
    std::string error;
  };
  std::vector<PendingSample> pending_;
  std::unique_ptr<ThreadPool> sampling_pool_;  // null: one thread
  int64_t next_seq_id_ = 0;
  int64_t next_arrival_ = 0;

  std::thread thread_;
  std::atomic<bool> running_{false};

  struct AtomicStats;
  std::unique_ptr<AtomicStats> stats_;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_ENGINE_H_
