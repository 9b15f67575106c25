// Bad weft.v1 GenerateRequests and the field each must be refused for,
// shared by the conversion unit test and the end-to-end gRPC test. Each is
// a mutation of a valid request with text "Hello world" on a model with a
// vocabulary under 100000 tokens, max_n 4 and a context of 256 tokens.
#ifndef WEFT_TESTS_SERVER_BAD_REQUESTS_H_
#define WEFT_TESTS_SERVER_BAD_REQUESTS_H_

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "weft/v1/generation.pb.h"

namespace weft::test {

struct BadRequest {
  const char* name;
  std::function<void(v1::GenerateRequest*)> mutate;
  const char* field;  // must appear in the message
};

inline std::vector<BadRequest> BadRequests() {
  return {
      {"no prompt", [](auto* r) { r->clear_prompt(); }, "prompt"},
      {"empty text", [](auto* r) { r->set_text(""); }, "prompt.text"},
      {"empty ids", [](auto* r) { r->mutable_token_ids(); }, "prompt.token_ids"},
      {"negative id",
       [](auto* r) { r->mutable_token_ids()->add_ids(-1); }, "prompt.token_ids[0]"},
      {"id past vocab",
       [](auto* r) {
         auto* ids = r->mutable_token_ids();
         ids->add_ids(1);
         ids->add_ids(2);
         ids->add_ids(100000);
       },
       "prompt.token_ids[2]"},
      {"other model", [](auto* r) { r->set_model("gpt-4"); }, "model"},
      {"long id", [](auto* r) { r->set_request_id(std::string(300, 'x')); },
       "request_id"},
      {"negative temperature",
       [](auto* r) { r->mutable_sampling()->set_temperature(-0.5f); },
       "sampling.temperature"},
      {"NaN temperature",
       [](auto* r) { r->mutable_sampling()->set_temperature(NAN); },
       "sampling.temperature"},
      {"top_p 0", [](auto* r) { r->mutable_sampling()->set_top_p(0.0f); },
       "sampling.top_p"},
      {"top_p 1.5", [](auto* r) { r->mutable_sampling()->set_top_p(1.5f); },
       "sampling.top_p"},
      {"top_k -1", [](auto* r) { r->mutable_sampling()->set_top_k(-1); },
       "sampling.top_k"},
      {"min_p 1.5", [](auto* r) { r->mutable_sampling()->set_min_p(1.5f); },
       "sampling.min_p"},
      {"repetition_penalty 0",
       [](auto* r) { r->mutable_sampling()->set_repetition_penalty(0.0f); },
       "sampling.repetition_penalty"},
      {"presence_penalty 3",
       [](auto* r) { r->mutable_sampling()->set_presence_penalty(3.0f); },
       "sampling.presence_penalty"},
      {"frequency_penalty -3",
       [](auto* r) { r->mutable_sampling()->set_frequency_penalty(-3.0f); },
       "sampling.frequency_penalty"},
      {"logit_bias token",
       [](auto* r) { (*r->mutable_sampling()->mutable_logit_bias())[99999] = 1; },
       "sampling.logit_bias"},
      {"logit_bias value",
       [](auto* r) { (*r->mutable_sampling()->mutable_logit_bias())[5] = 200; },
       "sampling.logit_bias"},
      {"logprobs 21", [](auto* r) { r->mutable_sampling()->set_logprobs(21); },
       "sampling.logprobs"},
      {"prompt_logprobs 50",
       [](auto* r) { r->mutable_sampling()->set_prompt_logprobs(50); },
       "sampling.prompt_logprobs"},
      {"n 0", [](auto* r) { r->mutable_sampling()->set_n(0); }, "sampling.n"},
      {"n above max_n", [](auto* r) { r->mutable_sampling()->set_n(5); },
       "sampling.n"},
      {"max_tokens 0", [](auto* r) { r->mutable_stopping()->set_max_tokens(0); },
       "stopping.max_tokens"},
      {"min_tokens above max_tokens",
       [](auto* r) {
         r->mutable_stopping()->set_max_tokens(4);
         r->mutable_stopping()->set_min_tokens(5);
       },
       "stopping.min_tokens"},
      {"17 stop strings",
       [](auto* r) {
         for (int i = 0; i < 17; ++i) r->mutable_stopping()->add_stop("s");
       },
       "stopping.stop"},
      {"long stop string",
       [](auto* r) { r->mutable_stopping()->add_stop(std::string(300, 'a')); },
       "stopping.stop"},
      {"empty stop string", [](auto* r) { r->mutable_stopping()->add_stop(""); },
       "stopping.stop"},
      {"invalid UTF-8 stop string",
       [](auto* r) { r->mutable_stopping()->add_stop("\xff\xfe"); },
       "stopping.stop"},
      {"negative stop token",
       [](auto* r) { r->mutable_stopping()->add_stop_token_ids(-4); },
       "stopping.stop_token_ids"},
      {"stop token past vocab",
       [](auto* r) { r->mutable_stopping()->add_stop_token_ids(100000); },
       "stopping.stop_token_ids[0]"},
      {"past the context",
       [](auto* r) { r->mutable_stopping()->set_max_tokens(300); },
       "stopping.max_tokens"},
  };
}

}  // namespace weft::test

#endif  // WEFT_TESTS_SERVER_BAD_REQUESTS_H_
