#include "runtime/model/llama.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/model/decode_graphs.h"

namespace weft {
namespace {

// Names of a layer's tensors in each format.
struct TensorNames {
  const char* gguf;
  const char* hf;
};
constexpr TensorNames kAttnNorm{"attn_norm.weight", "input_layernorm.weight"};
constexpr TensorNames kQ{"attn_q", "self_attn.q_proj"};
constexpr TensorNames kK{"attn_k", "self_attn.k_proj"};
constexpr TensorNames kV{"attn_v", "self_attn.v_proj"};
constexpr TensorNames kO{"attn_output", "self_attn.o_proj"};
constexpr TensorNames kFfnNorm{"ffn_norm.weight",
                               "post_attention_layernorm.weight"};
constexpr TensorNames kGate{"ffn_gate", "mlp.gate_proj"};
constexpr TensorNames kUp{"ffn_up", "mlp.up_proj"};
constexpr TensorNames kDown{"ffn_down", "mlp.down_proj"};

#define WEFT_RETURN_IF_ERROR(expr)            \
  do {                                        \
    if (absl::Status s_ = (expr); !s_.ok()) { \
      return s_;                              \
    }                                         \
  } while (0)

}  // namespace

absl::Status ModelPlan::Validate() const {
  if (max_num_tokens <= 0 || max_num_logits <= 0 || num_kv_blocks <= 0 ||
      block_size <= 0) {
    return absl::InvalidArgumentError("model plan: every size must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Create(
    const ModelFiles& files, Backend* backend, const ModelPlan& plan) {
  WEFT_RETURN_IF_ERROR(plan.Validate());
  std::unique_ptr<LlamaModel> model(
      new LlamaModel(files.config(), backend, plan));
  WEFT_RETURN_IF_ERROR(model->LoadWeights(files));
  WEFT_RETURN_IF_ERROR(model->PlanScratch());
  KvCacheShape kv;
  kv.num_layers = model->config_.num_layers;
  kv.num_blocks = plan.num_kv_blocks;
  kv.block_size = plan.block_size;
  kv.num_kv_heads = model->config_.num_kv_heads;
  kv.head_dim = model->config_.head_dim;
  kv.dtype = backend->kv_cache_dtype();
  if (backend->SupportsGraphs()) {
    model->dummy_block_ = plan.num_kv_blocks;
    kv.num_blocks = plan.num_kv_blocks + 1;
  }
  WEFT_RETURN_IF_ERROR(backend->AllocateKvCache(kv));
  return model;
}

absl::Status LlamaModel::LoadWeights(const ModelFiles& files) {
  const bool gguf = files.format() == WeightFormat::kGguf;
  const ModelConfig& c = config_;

  // Finds `name`, checks its shape is [rows, cols] (a 1-D tensor of `cols`
  // when rows == 0).
  auto find = [&](const std::string& name, int64_t rows,
                  int64_t cols) -> absl::StatusOr<const HostTensor*> {
    const HostTensor* t = files.FindTensor(name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("model: tensor '", name, "' is missing"));
    }
    const std::vector<int64_t> want =
        rows == 0 ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
    if (t->shape != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model: tensor '", name, "' has shape [",
          absl::StrJoin(t->shape, ", "), "], expected [",
          absl::StrJoin(want, ", "), "]"));
    }
    return t;
  };
  auto matrix = [&](const std::string& name, int64_t rows,
                    int64_t cols) -> absl::StatusOr<Tensor> {
    auto t = find(name, rows, cols);
    if (!t.ok()) return t.status();
    return backend_->UploadWeight((*t)->dtype, rows, cols, (*t)->data);
  };
  // Norm weights and biases go to the backend as fp32.
  auto vector = [&](const std::string& name,
                    int64_t size) -> absl::StatusOr<Tensor> {
    auto t = find(name, 0, size);
    if (!t.ok()) return t.status();
    auto values = std::make_unique<float[]>(size);
    DequantizeRow((*t)->dtype, (*t)->data, values.get(), size);
    host_f32_.push_back(std::move(values));
    return backend_->UploadWeight(DType::kF32, 1, size,
                                  host_f32_.back().get());
  };

  const int64_t q_dim = int64_t{c.num_q_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  auto assign = [](absl::StatusOr<Tensor> t, Tensor* out) -> absl::Status {
    if (!t.ok()) return t.status();
    *out = *t;
    return absl::OkStatus();
  };
  WEFT_RETURN_IF_ERROR(assign(
      matrix(gguf ? "token_embd.weight" : "model.embed_tokens.weight",
             c.vocab_size, c.hidden_size),
      &embedding_));
  WEFT_RETURN_IF_ERROR(assign(
      vector(gguf ? "output_norm.weight" : "model.norm.weight", c.hidden_size),
      &final_norm_));
  if (c.tie_word_embeddings &&
      files.FindTensor(gguf ? "output.weight" : "lm_head.weight") == nullptr) {
    lm_head_ = embedding_;
  } else {
    WEFT_RETURN_IF_ERROR(
        assign(matrix(gguf ? "output.weight" : "lm_head.weight", c.vocab_size,
                      c.hidden_size),
               &lm_head_));
  }

  layers_.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string prefix =
        gguf ? absl::StrCat("blk.", i, ".") : absl::StrCat("model.layers.", i, ".");
    auto name = [&](const TensorNames& n, const char* suffix) {
      return absl::StrCat(prefix, gguf ? n.gguf : n.hf, suffix);
    };
    Layer& layer = layers_[i];
    WEFT_RETURN_IF_ERROR(assign(vector(name(kAttnNorm, ""), c.hidden_size),
                                &layer.attn_norm));
    WEFT_RETURN_IF_ERROR(assign(vector(name(kFfnNorm, ""), c.hidden_size),
                                &layer.ffn_norm));
    WEFT_RETURN_IF_ERROR(
        assign(matrix(name(kQ, ".weight"), q_dim, c.hidden_size), &layer.q));
    WEFT_RETURN_IF_ERROR(
        assign(matrix(name(kK, ".weight"), kv_dim, c.hidden_size), &layer.k));
    WEFT_RETURN_IF_ERROR(
        assign(matrix(name(kV, ".weight"), kv_dim, c.hidden_size), &layer.v));
    WEFT_RETURN_IF_ERROR(
        assign(matrix(name(kO, ".weight"), c.hidden_size, q_dim), &layer.o));
    WEFT_RETURN_IF_ERROR(assign(
        matrix(name(kGate, ".weight"), c.intermediate_size, c.hidden_size),
        &layer.gate));
    WEFT_RETURN_IF_ERROR(assign(
        matrix(name(kUp, ".weight"), c.intermediate_size, c.hidden_size),
        &layer.up));
    WEFT_RETURN_IF_ERROR(assign(
        matrix(name(kDown, ".weight"), c.hidden_size, c.intermediate_size),
        &layer.down));
    if (!c.attention_bias && files.FindTensor(name(kQ, ".bias")) != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model: tensor '", name(kQ, ".bias"), "' would be ignored: the model's "
          "configuration has no attention biases"));
    }
    if (c.attention_bias) {
      WEFT_RETURN_IF_ERROR(assign(vector(name(kQ, ".bias"), q_dim), &layer.q_bias));
      WEFT_RETURN_IF_ERROR(assign(vector(name(kK, ".bias"), kv_dim), &layer.k_bias));
      WEFT_RETURN_IF_ERROR(assign(vector(name(kV, ".bias"), kv_dim), &layer.v_bias));
    }
    if (c.output_bias) {
      WEFT_RETURN_IF_ERROR(
          assign(vector(name(kO, ".bias"), c.hidden_size), &layer.o_bias));
    }
  }

  // A file with more layers than the configuration names (a wrong
  // block_count / num_hidden_layers) would run as a silently truncated
  // model.
  if (const std::string extra = absl::StrCat(
          gguf ? "blk." : "model.layers.", c.num_layers, ".",
          gguf ? kAttnNorm.gguf : kAttnNorm.hf);
      files.FindTensor(extra) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: the file has tensor '", extra, "' but the configuration has ",
        c.num_layers, " layers"));
  }

  std::vector<float> freq_factors;
  if (gguf) {
    if (const HostTensor* t = files.FindTensor("rope_freqs.weight")) {
      if (t->shape != std::vector<int64_t>{c.rotary_dim / 2}) {
        return absl::InvalidArgumentError(
            "model: rope_freqs.weight does not have rotary_dim / 2 entries");
      }
      freq_factors.resize(c.rotary_dim / 2);
      DequantizeRow(t->dtype, t->data, freq_factors.data(), c.rotary_dim / 2);
    }
  }
  const std::vector<float> inv_freq = RopeInverseFrequencies(c, freq_factors);
  auto rope = std::make_unique<float[]>(inv_freq.size());
  std::copy(inv_freq.begin(), inv_freq.end(), rope.get());
  host_f32_.push_back(std::move(rope));
  return assign(backend_->UploadWeight(DType::kF32, 1, inv_freq.size(),
                                       host_f32_.back().get()),
                &inv_freq_);
}

absl::Status LlamaModel::PlanScratch() {
  const DType act = backend_->activation_dtype();
  const int64_t t = plan_.max_num_tokens;
  const int64_t q_dim = int64_t{config_.num_q_heads} * config_.head_dim;
  const int64_t kv_dim = int64_t{config_.num_kv_heads} * config_.head_dim;
  struct Entry {
    Tensor* tensor;
    int64_t rows, cols;
  };
  Scratch& s = scratch_;
  for (const Entry& e : {Entry{&s.residual, t, config_.hidden_size},
                         Entry{&s.normed, t, config_.hidden_size},
                         Entry{&s.q, t, q_dim},
                         Entry{&s.k, t, kv_dim},
                         Entry{&s.v, t, kv_dim},
                         Entry{&s.attn, t, q_dim},
                         Entry{&s.delta, t, config_.hidden_size},
                         Entry{&s.gate, t, config_.intermediate_size},
                         Entry{&s.up, t, config_.intermediate_size},
                         Entry{&s.gathered, plan_.max_num_logits,
                               config_.hidden_size},
                         Entry{&s.logits, plan_.max_num_logits,
                               config_.vocab_size}}) {
    auto tensor = backend_->Allocate(act, e.rows, e.cols);
    if (!tensor.ok()) return tensor.status();
    *e.tensor = *tensor;
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::Attention(int layer_index, const BatchView& view,
                                   int n) {
  const Layer& layer = layers_[layer_index];
  Scratch& s = scratch_;
  Tensor normed = s.normed.Rows(0, n);
  Tensor q = s.q.Rows(0, n), k = s.k.Rows(0, n), v = s.v.Rows(0, n);
  auto bias = [](const Tensor& b) { return b.data != nullptr ? &b : nullptr; };
  const Backend::MatMulTarget qkv[] = {{&layer.q, bias(layer.q_bias), &q},
                                       {&layer.k, bias(layer.k_bias), &k},
                                       {&layer.v, bias(layer.v_bias), &v}};
  WEFT_RETURN_IF_ERROR(backend_->MatMuls(normed, qkv));

  AttentionParams attention;
  attention.num_q_heads = config_.num_q_heads;
  attention.num_kv_heads = config_.num_kv_heads;
  attention.head_dim = config_.head_dim;
  attention.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  RopeParams rope;
  rope.style = config_.rope_style;
  rope.head_dim = config_.head_dim;
  rope.rotary_dim = config_.rotary_dim;
  rope.inv_freq = inv_freq_;
  const KvLayerView kv = backend_->kv_layer(layer_index);
  WEFT_RETURN_IF_ERROR(
      backend_->RopeAndWriteKv(rope, attention, view, &q, &k, v, kv));
  Tensor attn = s.attn.Rows(0, n);
  WEFT_RETURN_IF_ERROR(backend_->PagedAttention(attention, view, q, kv, &attn));
  Tensor delta = s.delta.Rows(0, n);
  return backend_->MatMul(attn, layer.o, bias(layer.o_bias), &delta);
}

absl::Status LlamaModel::Mlp(int layer_index, int n) {
  const Layer& layer = layers_[layer_index];
  Scratch& s = scratch_;
  Tensor normed = s.normed.Rows(0, n);
  Tensor gate = s.gate.Rows(0, n), up = s.up.Rows(0, n);
  const Backend::MatMulTarget gate_up[] = {{&layer.gate, nullptr, &gate},
                                           {&layer.up, nullptr, &up}};
  WEFT_RETURN_IF_ERROR(backend_->MatMuls(normed, gate_up));
  WEFT_RETURN_IF_ERROR(backend_->SiluMul(gate, up, &gate));
  Tensor delta = s.delta.Rows(0, n);
  return backend_->MatMul(gate, layer.down, nullptr, &delta);
}

absl::Status LlamaModel::CheckBatch(const BatchMetadata& batch) const {
  const int n = batch.num_tokens();
  if (n > plan_.max_num_tokens ||
      static_cast<int>(batch.logits_rows.size()) > plan_.max_num_logits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch of ", n, " tokens and ", batch.logits_rows.size(),
        " logits rows exceeds the plan (", plan_.max_num_tokens, ", ",
        plan_.max_num_logits, ")"));
  }
  for (int32_t id : batch.token_ids) {
    if (id < 0 || id >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", id, " is outside the vocabulary of ",
          config_.vocab_size));
    }
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::RunOps(const BatchView& view, int n, int num_logits) {
  Scratch& s = scratch_;
  Tensor residual = s.residual.Rows(0, n);
  Tensor normed = s.normed.Rows(0, n);
  Tensor delta = s.delta.Rows(0, n);
  const float eps = static_cast<float>(config_.rms_norm_eps);
  WEFT_RETURN_IF_ERROR(backend_->Embedding(embedding_, view, &residual));
  for (int i = 0; i < config_.num_layers; ++i) {
    if (i == 0) {
      WEFT_RETURN_IF_ERROR(
          backend_->RmsNorm(residual, layers_[i].attn_norm, eps, &normed));
    } else {
      WEFT_RETURN_IF_ERROR(backend_->AddRmsNorm(
          &residual, delta, layers_[i].attn_norm, eps, &normed));
    }
    WEFT_RETURN_IF_ERROR(Attention(i, view, n));
    WEFT_RETURN_IF_ERROR(backend_->AddRmsNorm(&residual, delta,
                                              layers_[i].ffn_norm, eps,
                                              &normed));
    WEFT_RETURN_IF_ERROR(Mlp(i, n));
  }
  WEFT_RETURN_IF_ERROR(
      backend_->AddRmsNorm(&residual, delta, final_norm_, eps, &normed));
  if (num_logits == 0) return absl::OkStatus();
  Tensor gathered = s.gathered.Rows(0, num_logits);
  Tensor out = s.logits.Rows(0, num_logits);
  WEFT_RETURN_IF_ERROR(backend_->GatherRows(normed, view, &gathered));
  return backend_->MatMul(gathered, lm_head_, nullptr, &out);
}

absl::Status LlamaModel::Forward(const BatchMetadata& batch,
                                 std::vector<float>* logits) {
  auto num_logits = Run(batch);
  if (!num_logits.ok()) return num_logits.status();
  logits->resize(static_cast<size_t>(*num_logits) * config_.vocab_size);
  if (*num_logits > 0) {
    WEFT_RETURN_IF_ERROR(backend_->CopyToHost(
        scratch_.logits.Rows(0, *num_logits), logits->data()));
  }
  return backend_->Synchronize();
}

absl::Status LlamaModel::ForwardArgMax(const BatchMetadata& batch,
                                       std::vector<int32_t>* ids) {
  auto num_logits = Run(batch);
  if (!num_logits.ok()) return num_logits.status();
  ids->resize(*num_logits);
  if (*num_logits > 0) {
    WEFT_RETURN_IF_ERROR(backend_->ArgMaxRowsToHost(
        scratch_.logits.Rows(0, *num_logits), ids->data()));
  }
  return backend_->Synchronize();
}

absl::Status LlamaModel::CopyLogitsRow(int row, float* dst) {
  if (row < 0 || row >= plan_.max_num_logits) {
    return absl::OutOfRangeError(absl::StrCat("logits row ", row));
  }
  return backend_->CopyToHost(scratch_.logits.Rows(row, 1), dst);
}

absl::StatusOr<int> LlamaModel::Run(const BatchMetadata& batch) {
  WEFT_RETURN_IF_ERROR(CheckBatch(batch));
  const int n = batch.num_tokens();
  const int bucket = graph_buckets_.empty() || !IsPlainDecodeStep(batch)
                         ? 0
                         : DecodeGraphBucketFor(graph_buckets_, n);
  int num_logits = 0;
  if (bucket > 0) {
    // Validated (StageBatchForGraph) before anything runs, like StageBatch.
    auto staged = backend_->StageBatchForGraph(
        PadDecodeBatch(batch, bucket, dummy_block_, plan_.block_size),
        /*variant=*/-1);
    if (!staged.ok()) return staged.status();
    WEFT_RETURN_IF_ERROR(backend_->Replay(bucket));
    ++graph_replays_;
    num_logits = n;  // the padding's rows follow and are not copied
  } else {
    auto staged = backend_->StageBatch(batch);
    if (!staged.ok()) return staged.status();
    num_logits = staged->num_logits;
    WEFT_RETURN_IF_ERROR(RunOps(*staged, n, num_logits));
  }
  return num_logits;
}

absl::Status LlamaModel::WarmUp(int max_decode_batch, bool decode_graphs,
                                std::string* report) {
  WEFT_RETURN_IF_ERROR(backend_->WarmUp(report));
  if (!decode_graphs) return absl::OkStatus();
  return CaptureDecodeGraphs(max_decode_batch, report);
}

absl::Status LlamaModel::CaptureDecodeGraphs(int max_batch,
                                             std::string* report) {
  if (!backend_->SupportsGraphs() || dummy_block_ < 0) return absl::OkStatus();
  const int limit =
      std::min({max_batch, plan_.max_num_tokens, plan_.max_num_logits});
  const std::vector<int> buckets = DecodeGraphBuckets(limit);
  graph_buckets_.clear();
  const BatchMetadata none;
  for (int bucket : buckets) {
    for (int variant = 0; variant < backend_->NumGraphVariants(); ++variant) {
      auto view = backend_->StageBatchForGraph(
          PadDecodeBatch(none, bucket, dummy_block_, plan_.block_size),
          variant);
      if (!view.ok()) return view.status();
      // One eager run first (it writes the dummy block only): kernels the
      // runtime loads lazily, and any first-call set-up of a library, then
      // happen outside the capture, where they are not allowed.
      WEFT_RETURN_IF_ERROR(RunOps(*view, bucket, bucket));
      WEFT_RETURN_IF_ERROR(backend_->Synchronize());
      WEFT_RETURN_IF_ERROR(backend_->BeginCapture());
      const absl::Status ops = RunOps(*view, bucket, bucket);
      const absl::Status end = backend_->EndCapture(ops.ok() ? bucket : -1);
      WEFT_RETURN_IF_ERROR(ops);
      WEFT_RETURN_IF_ERROR(end);
      // Run it once, so a graph that cannot run fails here, at start-up.
      WEFT_RETURN_IF_ERROR(backend_->Replay(bucket));
      WEFT_RETURN_IF_ERROR(backend_->Synchronize());
    }
  }
  graph_buckets_ = buckets;
  if (report != nullptr && !buckets.empty()) {
    absl::StrAppend(report, "decode graphs: ", buckets.size(),
                    " batch sizes × ", backend_->NumGraphVariants(),
                    " variants captured (", absl::StrJoin(buckets, ", "),
                    ")\n");
  }
  return absl::OkStatus();
}

}  // namespace weft
