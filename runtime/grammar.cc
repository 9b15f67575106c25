#include "runtime/grammar.h"

#include <dlpack/dlpack.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <list>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
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

using CompileResult = absl::StatusOr<std::shared_ptr<const CompiledGrammar>>;

struct GrammarCompiler::Impl {
  Impl(xgrammar::TokenizerInfo info, const GrammarConfig& config)
      : info(std::move(info)),
        // weft keeps its own cache (successes only, bounded; xgrammar's
        // keeps failed compiles forever).
        compiler(this->info, config.compile_threads, /*cache_enabled=*/false),
        config(config) {}

  // What the workers run: xgrammar's compile of `output`.
  CompileResult CompileNow(const StructuredOutput& output);
  // A worker: compiles queued jobs until `stopping` and none is left.
  void Work();
  // Keeps `grammar` under `key`, dropping the least recently used beyond
  // the budget. Holds `mu`.
  void Remember(const std::string& key, std::shared_ptr<const CompiledGrammar> grammar);

  xgrammar::TokenizerInfo info;
  xgrammar::GrammarCompiler compiler;
  const GrammarConfig config;

  struct Job {
    std::string key;
    StructuredOutput output;
    std::promise<CompileResult> result;
  };
  // What the callers waiting for one job share with it.
  struct Pending {
    std::shared_future<CompileResult> result;
    int waiters = 0;       // callers still waiting; guarded by mu
    bool started = false;  // a worker took the job; guarded by mu
  };
  std::mutex mu;
  std::condition_variable work;
  std::condition_variable idle;  // busy fell to 0
  std::deque<Job> queue;  // guarded by mu, as everything below
  bool stopping = false;
  int busy = 0;  // workers inside a compile
  absl::flat_hash_map<std::string, std::shared_ptr<Pending>> in_flight;
  struct Cached {
    std::string key;
    std::shared_ptr<const CompiledGrammar> grammar;
    int64_t bytes;
  };
  std::list<Cached> lru;  // most recently used first
  absl::flat_hash_map<std::string, std::list<Cached>::iterator> cached;
  int64_t cached_bytes = 0;
};

namespace {

// The cache key of a spec: every field that changes what is compiled.
std::string CacheKey(const StructuredOutput& output) {
  std::string key = absl::StrCat(static_cast<int>(output.kind), ":",
                                 output.any_whitespace ? 1 : 0, ":",
                                 output.spec.size(), ":", output.spec);
  for (const std::string& choice : output.choices) {
    absl::StrAppend(&key, ":", choice.size(), ":", choice);
  }
  return key;
}

}  // namespace

void GrammarCompiler::Impl::Work() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu);
      work.wait(lock, [this] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping
      job = std::move(queue.front());
      queue.pop_front();
      auto pending = in_flight.find(job.key);
      if (pending != in_flight.end() && pending->second->waiters == 0) {
        // Every caller gave up while it waited for a worker: not compiled.
        in_flight.erase(pending);
        job.result.set_value(absl::UnavailableError("nobody waits for it"));
        continue;
      }
      if (pending != in_flight.end()) pending->second->started = true;
      ++busy;
    }
    CompileResult result = absl::InternalError("grammar: the compile failed");
    try {
      result = CompileNow(job.output);
    } catch (...) {  // CompileNow catches std::exception; anything else
    }
    {
      std::lock_guard lock(mu);
      if (--busy == 0) idle.notify_all();
      in_flight.erase(job.key);
      if (result.ok()) {
        try {
          Remember(job.key, *result);
        } catch (...) {  // not cached, still returned
        }
      }
    }
    job.result.set_value(std::move(result));
  }
}

void GrammarCompiler::Impl::Remember(const std::string& key,
                                     std::shared_ptr<const CompiledGrammar> grammar) {
  if (cached.contains(key)) return;
  const int64_t bytes = static_cast<int64_t>(grammar->get().MemorySizeBytes()) +
                        static_cast<int64_t>(key.size());
  if (bytes > config.cache_bytes) return;
  lru.push_front(Cached{key, std::move(grammar), bytes});
  cached[key] = lru.begin();
  cached_bytes += bytes;
  while (cached_bytes > config.cache_bytes) {
    cached_bytes -= lru.back().bytes;
    cached.erase(lru.back().key);
    lru.pop_back();
  }
}

absl::StatusOr<std::unique_ptr<GrammarCompiler>> GrammarCompiler::Create(
    const Tokenizer& tokenizer, int vocab_size, const GrammarConfig& config) {
  const int tokens = tokenizer.vocab_size();
  if (vocab_size < tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grammar: the model's vocabulary (", vocab_size,
        ") is smaller than the tokenizer's (", tokens, ")"));
  }
  if (config.max_compiles < 1 || config.max_waiting < 0 || config.compile_threads < 1 ||
      config.cache_bytes < 0 || config.compile_timeout <= absl::ZeroDuration() ||
      config.compile_timeout > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        "grammar: max_compiles and compile_threads must be positive, max_waiting "
        "and cache_bytes non-negative, compile_timeout in (0, 24h]");
  }
  // Each token as the bytes it adds to the text (RAW: no further decoding
  // on xgrammar's side); special tokens as "", which xgrammar never allows.
  // No stop tokens here: each matcher names its own, and a stop token
  // listed here too would be let through by masks that matcher built.
  std::vector<std::string> vocab(tokens);
  for (int32_t id = 0; id < tokens; ++id) {
    if (!tokenizer.IsSpecial(id)) vocab[id] = tokenizer.TokenBytes(id);
  }
  try {
    xgrammar::TokenizerInfo info(vocab, xgrammar::VocabType::RAW, vocab_size,
                                 std::vector<int32_t>{});
    auto impl = std::make_shared<Impl>(std::move(info), config);
    // Detached: a worker inside a compile that cannot be interrupted keeps
    // `impl` alive past the compiler's destruction, then exits.
    try {
      for (int i = 0; i < config.max_compiles; ++i) {
        std::thread([impl] { impl->Work(); }).detach();
      }
    } catch (const std::system_error& e) {
      {
        std::lock_guard lock(impl->mu);
        impl->stopping = true;  // the workers already started exit
      }
      impl->work.notify_all();
      return absl::ResourceExhaustedError(
          absl::StrCat("grammar: cannot start a compile worker: ", e.what()));
    }
    return std::unique_ptr<GrammarCompiler>(new GrammarCompiler(std::move(impl)));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("grammar: cannot index the vocabulary: ", ErrorText(e)));
  }
}

GrammarCompiler::GrammarCompiler(std::shared_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

GrammarCompiler::~GrammarCompiler() {
  std::deque<Impl::Job> abandoned;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    abandoned.swap(impl_->queue);
  }
  impl_->work.notify_all();
  for (Impl::Job& job : abandoned) {
    job.result.set_value(absl::UnavailableError("grammar: the compiler stopped"));
  }
  // A compile still running would go on past the end of main(), into
  // xgrammar's statics as they are destroyed: give it a while to end.
  // (Beyond that the process exits with it running, as it must.)
  std::unique_lock lock(impl_->mu);
  impl_->idle.wait_for(lock, std::chrono::seconds(10),
                       [this] { return impl_->busy == 0; });
}

int GrammarCompiler::vocab_size() const { return impl_->info.GetVocabSize(); }

int VocabSizeOf(const CompiledGrammar& grammar) {
  return grammar.get().GetTokenizerInfo().GetVocabSize();
}

CompileResult GrammarCompiler::Compile(const StructuredOutput& output) {
  if (output.kind == StructuredOutput::Kind::kNone) {
    return absl::InvalidArgumentError("no grammar to compile");
  }
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
  const std::string key = CacheKey(output);
  std::shared_ptr<Impl::Pending> pending;
  {
    std::lock_guard lock(impl_->mu);
    if (auto hit = impl_->cached.find(key); hit != impl_->cached.end()) {
      impl_->lru.splice(impl_->lru.begin(), impl_->lru, hit->second);
      return hit->second->grammar;
    }
    if (auto running = impl_->in_flight.find(key); running != impl_->in_flight.end()) {
      pending = running->second;  // the same spec, asked for by another request
    } else {
      // Jobs an idle worker is about to take do not wait.
      const int idle = impl_->config.max_compiles - impl_->busy;
      if (static_cast<int>(impl_->queue.size()) >= impl_->config.max_waiting + idle) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "structured output: ", impl_->queue.size(),
            " grammars are already waiting to compile; try again later"));
      }
      Impl::Job job{key, output, {}};
      pending = std::make_shared<Impl::Pending>();
      pending->result = job.result.get_future().share();
      impl_->queue.push_back(std::move(job));
      impl_->in_flight[key] = pending;
    }
    ++pending->waiters;
  }
  impl_->work.notify_one();
  const absl::Duration timeout = impl_->config.compile_timeout;
  if (pending->result.wait_for(absl::ToChronoMilliseconds(timeout)) !=
      std::future_status::ready) {
    std::lock_guard lock(impl_->mu);
    --pending->waiters;
    if (!pending->started) {
      // It never reached a worker: the server is busy, not the spec bad.
      return absl::ResourceExhaustedError(absl::StrCat(
          "structured output: no compile worker was free within ",
          absl::FormatDuration(timeout), "; try again later"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "did not compile within ", absl::FormatDuration(timeout),
        " (it is too complex for this server)"));
  }
  {
    std::lock_guard lock(impl_->mu);
    --pending->waiters;
  }
  return pending->result.get();
}

CompileResult GrammarCompiler::Impl::CompileNow(const StructuredOutput& output) {
  using Kind = StructuredOutput::Kind;
  try {
    std::optional<xgrammar::CompiledGrammar> compiled;
    switch (output.kind) {
      case Kind::kNone:
        return absl::InvalidArgumentError("no grammar to compile");
      case Kind::kJsonObject:
        compiled = compiler.CompileJSONSchema(R"({"type": "object"})",
                                              output.any_whitespace);
        break;
      case Kind::kJson:  // the empty schema, not strict: any JSON value
        compiled = compiler.CompileJSONSchema("{}", output.any_whitespace, std::nullopt,
                                              std::nullopt, /*strict_mode=*/false);
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
        compiled = LooksLikeEbnf(output.spec) ? compiler.CompileGrammar(output.spec)
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
  // xgrammar sets whole words: no bit past the vocabulary may stay set.
  const int vocab = impl_->grammar->get().GetTokenizerInfo().GetVocabSize();
  if (vocab % 32 != 0) impl_->mask.back() &= (1u << (vocab % 32)) - 1u;
  return impl_->mask;
}

bool GrammarMatcher::Accept(int32_t token) {
  return impl_->matcher.AcceptToken(token);
}

bool GrammarMatcher::IsTerminated() const {
  return impl_->matcher.IsTerminated();
}

}  // namespace weft
