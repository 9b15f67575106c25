// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM2), written
// once against kernels/backend.h:
//   x = embed(tokens)
//   per layer: h = x + o_proj(attn(rope(q(norm(x))), rope(k(...)), v(...)))
//              x = h + down(silu(gate(norm(h))) * up(norm(h)))
//   logits = lm_head(norm(x)) for the requested rows
// The residual add is fused into the next RMSNorm (Backend::AddRmsNorm).
#ifndef WEFT_RUNTIME_MODEL_LLAMA_H_
#define WEFT_RUNTIME_MODEL_LLAMA_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "runtime/model/model_files.h"

namespace weft {

// What the model plans its scratch and KV cache for, once, at creation.
struct ModelPlan {
  int max_num_tokens = 512;   // tokens in one step (prefill chunk + decodes)
  int max_num_logits = 64;    // rows of logits in one step
  int num_kv_blocks = 256;
  int block_size = 16;

  absl::Status Validate() const;
};

class LlamaModel {
 public:
  // Uploads the weights of `files` to `backend` and plans scratch and the KV
  // cache. `files` and `backend` must outlive the model.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Create(
      const ModelFiles& files, Backend* backend, const ModelPlan& plan);

  // Runs one step over `batch` (its K/V land in the cache) and writes the
  // logits of batch.logits_rows to `logits`, [num_logits, vocab_size]
  // row-major. InvalidArgument for a malformed batch or out-of-vocabulary
  // token; the cache is untouched then.
  absl::Status Forward(const BatchMetadata& batch, std::vector<float>* logits);
  // The same step, keeping only each logits row's argmax (the lowest index
  // of its largest logit; -1 for a row holding a NaN) in `ids`
  // [num_logits]: what greedy sampling needs, without copying the
  // vocabulary-wide rows to the host (Backend::ArgMaxRowsToHost). The
  // logits stay on the device until the next step: CopyLogitsRow.
  absl::Status ForwardArgMax(const BatchMetadata& batch,
                             std::vector<int32_t>* ids);
  // Row `row` of the last step's logits, [vocab_size], to the host.
  absl::Status CopyLogitsRow(int row, float* dst);

  // What a server does once before its first request: Backend::WarmUp
  // (the CUDA GEMM autotune), then, with `decode_graphs`,
  // CaptureDecodeGraphs(max_decode_batch) — in that order, since a graph
  // records the kernels the autotune chose. Appends both reports.
  absl::Status WarmUp(int max_decode_batch, bool decode_graphs,
                      std::string* report);

  // When the backend supports graphs (CUDA), captures one decode step per
  // bucket of DecodeGraphBuckets(max_batch), capped by the plan's tokens
  // and logits rows; later plain decode steps of up to the largest bucket
  // are padded to their bucket and replay its graph (decode_graphs.h).
  // Call after Backend::WarmUp: a graph records the kernels chosen then.
  // Appends a line to `report`. Does nothing on other backends.
  absl::Status CaptureDecodeGraphs(int max_batch, std::string* report);
  // Steps run by replaying a captured graph (since Create).
  int64_t graph_replays() const { return graph_replays_; }
  const std::vector<int>& decode_graph_buckets() const {
    return graph_buckets_;
  }

  const ModelConfig& config() const { return config_; }
  const ModelPlan& plan() const { return plan_; }

 private:
  struct Layer {
    Tensor attn_norm, q, k, v, o, ffn_norm, gate, up, down;
    Tensor q_bias, k_bias, v_bias, o_bias;  // data == nullptr when absent
  };
  struct Scratch {
    Tensor residual, normed, q, k, v, attn, delta, gate, up, gathered, logits;
  };

  LlamaModel(const ModelConfig& config, Backend* backend, const ModelPlan& plan)
      : config_(config), backend_(backend), plan_(plan) {}
  absl::Status LoadWeights(const ModelFiles& files);
  absl::Status PlanScratch();
  absl::Status CheckBatch(const BatchMetadata& batch) const;
  // Checks, stages and runs one step (graph replay or eager ops), leaving
  // its logits in scratch_.logits; returns their number of rows.
  absl::StatusOr<int> Run(const BatchMetadata& batch);
  // The ops of one step on a staged batch of n tokens, up to the logits of
  // its num_logits rows in scratch_.logits (nothing copied to the host, no
  // synchronization: what a graph records).
  absl::Status RunOps(const BatchView& view, int n, int num_logits);
  absl::Status Attention(int layer, const BatchView& view, int n);
  absl::Status Mlp(int layer, int n);

  ModelConfig config_;
  Backend* backend_;
  ModelPlan plan_;
  Tensor embedding_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  Tensor inv_freq_;
  Scratch scratch_;
  // With a graph-capable backend the cache has one block more than the
  // plan; padded decode sequences use it (decode_graphs.h). -1 otherwise.
  int dummy_block_ = -1;
  std::vector<int> graph_buckets_;  // captured; empty: every step eager
  int64_t graph_replays_ = 0;
  // fp32 copies of small tensors (norms, biases, rope frequencies) that the
  // backend reads from host memory kept alive here.
  std::vector<std::unique_ptr<float[]>> host_f32_;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_MODEL_LLAMA_H_
