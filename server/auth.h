// API keys and tenants. The key file holds one entry per line,
//   <tenant id> <sha256 of the key, 64 hex digits>
// ('#' starts a comment); the plain keys are never stored. A client sends
// `authorization: Bearer <key>` in its gRPC metadata (or HTTP header); the
// tenant id travels with its requests into the engine.
#ifndef WEFT_SERVER_AUTH_H_
#define WEFT_SERVER_AUTH_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace weft {

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

class ApiKeys {
 public:
  // No keys: every caller is the tenant "default" (auth disabled).
  ApiKeys() = default;
  // InvalidArgument naming the line for a malformed entry; NotFound for a
  // missing file.
  static absl::StatusOr<ApiKeys> FromFile(const std::string& path);
  static absl::StatusOr<ApiKeys> FromText(absl::string_view text,
                                          absl::string_view origin);

  bool enabled() const { return !tenant_by_hash_.empty(); }
  // The tenant of `authorization` ("Bearer <key>"), or UNAUTHENTICATED.
  absl::StatusOr<std::string> Authenticate(absl::string_view authorization) const;

 private:
  absl::flat_hash_map<std::string, std::string> tenant_by_hash_;
};

}  // namespace weft

#endif  // WEFT_SERVER_AUTH_H_
