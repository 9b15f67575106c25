#include "server/auth.h"

#include "gtest/gtest.h"

namespace weft {
namespace {

TEST(Sha256Test, MatchesTheKnownDigest) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiKeysTest, NoKeysMeansEveryoneIsTheDefaultTenant) {
  ApiKeys keys;
  EXPECT_FALSE(keys.enabled());
  EXPECT_EQ(*keys.Authenticate(""), "default");
}

TEST(ApiKeysTest, TheRightKeyNamesItsTenantAndOthersAreRefused) {
  auto keys = ApiKeys::FromText(
      "# tenants\nalice " + Sha256Hex("k-alice") + "\n\nbob  " +
          Sha256Hex("k-bob") + "  # trailing comment\n",
      "keys");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(*keys->Authenticate("Bearer k-alice"), "alice");
  EXPECT_EQ(*keys->Authenticate("Bearer k-bob"), "bob");
  EXPECT_EQ(keys->Authenticate("Bearer wrong").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys->Authenticate("").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys->Authenticate("k-alice").status().code(),
            absl::StatusCode::kUnauthenticated);  // no "Bearer "
}

TEST(ApiKeysTest, MalformedLinesAreRejectedWithTheLineNamed) {
  for (const char* text : {"alice\n", "alice nothex\n", "a b c\n",
                           "alice 1234\n"}) {
    auto keys = ApiKeys::FromText(text, "keys.txt");
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(keys.status().message().find("keys.txt:1"), absl::string_view::npos);
  }
  const std::string hash = Sha256Hex("same");
  EXPECT_EQ(ApiKeys::FromText("a " + hash + "\nb " + hash, "k").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApiKeys::FromFile("/nonexistent/keys").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace weft
