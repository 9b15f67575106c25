// The tiny_llama fixture's tokenizer served as "tiny" (a 256-token
// context, n at most 4): what the request-conversion and OpenAI API tests
// validate against, with a grammar compiler and a chat template for the
// tests that need them.
#ifndef WEFT_TESTS_SERVER_TINY_SERVED_MODEL_H_
#define WEFT_TESTS_SERVER_TINY_SERVED_MODEL_H_

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "runtime/chat/chat_template.h"
#include "runtime/grammar.h"
#include "runtime/tokenizer/tokenizer.h"
#include "server/request_conversion.h"

namespace weft::test {

class TinyServedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_llama";
    auto tokenizer = Tokenizer::FromHfFiles(dir + "/tokenizer.json",
                                            dir + "/tokenizer_config.json");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
    model_.name = "tiny";
    model_.tokenizer = tokenizer_.get();
    model_.vocab_size = tokenizer_->vocab_size();
    model_.max_model_len = 256;
    model_.max_n = 4;
  }

  // model_.grammars: structured output compiles against the vocabulary.
  void AddGrammars() {
    auto grammars = GrammarCompiler::Create(*tokenizer_, tokenizer_->vocab_size(),
                                            GrammarConfig{});
    ASSERT_TRUE(grammars.ok()) << grammars.status();
    grammars_ = *std::move(grammars);
    model_.grammars = grammars_.get();
  }

  // model_.chat_template: `source`, with <s> and </s>.
  void AddChatTemplate(const std::string& source) {
    auto chat_template = ChatTemplate::Create(source, "<s>", "</s>");
    ASSERT_TRUE(chat_template.ok()) << chat_template.status();
    template_ = *std::move(chat_template);
    model_.chat_template = template_.get();
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<GrammarCompiler> grammars_;
  std::unique_ptr<ChatTemplate> template_;
  ServedModel model_;
};

}  // namespace weft::test

#endif  // WEFT_TESTS_SERVER_TINY_SERVED_MODEL_H_
