#include "server/auth.h"

#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace weft {

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : digest) {
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  }
  return out;
}

absl::StatusOr<ApiKeys> ApiKeys::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read API key file '", path, "'"));
  std::stringstream text;
  text << in.rdbuf();
  return FromText(text.str(), path);
}

absl::StatusOr<ApiKeys> ApiKeys::FromText(absl::string_view text,
                                          absl::string_view origin) {
  ApiKeys keys;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", line_number, ": ", why));
    };
    if (fields.size() != 2) return bad("expected '<tenant> <sha256 hex>'");
    const std::string hash = absl::AsciiStrToLower(fields[1]);
    if (hash.size() != 64 ||
        hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return bad("the key hash must be 64 hex digits (sha256 of the key)");
    }
    if (!keys.tenant_by_hash_.emplace(hash, std::string(fields[0])).second) {
      return bad("the same key hash appears twice");
    }
  }
  return keys;
}

absl::StatusOr<std::string> ApiKeys::Authenticate(
    absl::string_view authorization) const {
  if (!enabled()) return std::string("default");
  absl::string_view key = authorization;
  if (!absl::ConsumePrefix(&key, "Bearer ") || key.empty()) {
    return absl::UnauthenticatedError(
        "missing API key: send 'authorization: Bearer <key>'");
  }
  auto it = tenant_by_hash_.find(Sha256Hex(key));
  if (it == tenant_by_hash_.end()) {
    return absl::UnauthenticatedError("invalid API key");
  }
  return it->second;
}

}  // namespace weft
