// Real chat templates render byte for byte as Python jinja2 (configured as
// transformers' apply_chat_template) renders them: every fixture in
// tests/fixtures/chat_templates/ (made by tools/make_chat_template_fixtures.py)
// holds a template, conversations and jinja2's rendering or error for each.
// (Load errors of unsupported constructs are tested in chat_template_test.cc:
// every real template collected so far loads.)
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/chat/chat_template.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using Json = nlohmann::ordered_json;

// WEFT_CHAT_TEMPLATE_FIXTURES may point at another set (e.g. all of the
// sdist's templates: make_chat_template_fixtures.py --all --out DIR).
const std::filesystem::path kFixtureDir =
    std::getenv("WEFT_CHAT_TEMPLATE_FIXTURES") != nullptr
        ? std::filesystem::path(std::getenv("WEFT_CHAT_TEMPLATE_FIXTURES"))
        : std::filesystem::path(WEFT_SOURCE_DIR) / "tests/fixtures/chat_templates";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> FixtureNames() {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(kFixtureDir, error)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// "2024-07-26T12:00:00" → civil time.
absl::CivilSecond ParseNow(const std::string& iso) {
  int y, mo, d, h, mi, s;
  EXPECT_EQ(std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &s), 6) << iso;
  return absl::CivilSecond(y, mo, d, h, mi, s);
}

class ChatTemplateFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST(ChatTemplateFixtures, CoverAtLeastTenTemplates) {
  EXPECT_GE(FixtureNames().size(), 10u) << "in " << kFixtureDir;
}

TEST_P(ChatTemplateFixtureTest, RendersEveryConversationLikeJinja2) {
  const Json fixture = Json::parse(ReadFile(kFixtureDir / (GetParam() + ".json")));
  const std::string source = ReadFile(kFixtureDir / fixture["template"].get<std::string>());
  ASSERT_FALSE(source.empty());
  auto chat_template = ChatTemplate::Create(source, fixture["bos_token"].get<std::string>(),
                                            fixture["eos_token"].get<std::string>());
  ASSERT_TRUE(chat_template.ok()) << chat_template.status();
  const absl::CivilSecond now = ParseNow(fixture["now"].get<std::string>());
  ASSERT_FALSE(fixture["cases"].empty());
  for (const Json& c : fixture["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ChatTemplateInputs inputs;
    inputs.messages = c["messages"];
    inputs.tools = c["tools"];
    inputs.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    inputs.extra = c["extra"];
    absl::StatusOr<std::string> rendered = (*chat_template)->Render(inputs, now);
    if (c.contains("expected")) {
      ASSERT_TRUE(rendered.ok()) << rendered.status();
      EXPECT_EQ(*rendered, c["expected"].get<std::string>());
    } else if (c["raised"].get<bool>()) {
      // The template's own raise_exception: its message, verbatim.
      EXPECT_THAT(rendered, test::StatusIs(absl::StatusCode::kInvalidArgument,
                                           c["error"].get<std::string>()));
      if (!rendered.ok()) {
        EXPECT_EQ(rendered.status().message(), c["error"].get<std::string>());
      }
    } else {
      EXPECT_THAT(rendered, test::StatusIs(absl::StatusCode::kInvalidArgument, ""))
          << "jinja2 failed with: " << c["error"].get<std::string>();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ChatTemplateFixtureTest, ::testing::ValuesIn(FixtureNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace weft
