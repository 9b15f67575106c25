// The one place where absl::Status becomes a gRPC status or an HTTP status
// code. gRPC codes map one to one and keep the message; HTTP codes follow
// google.rpc.Code's documented HTTP mapping (server/openai_errors.h builds
// the OpenAI-shaped body around it).
#ifndef WEFT_SERVER_STATUS_H_
#define WEFT_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace weft {

// Keeps the code and the message (as ClientMessage gives it).
grpc::Status ToGrpcStatus(const absl::Status& status);

// Longest status message sent to a client, in bytes.
inline constexpr size_t kMaxClientMessageBytes = 1024;
// `message` fit to send: ill-formed UTF-8 as U+FFFD (a message quoting a
// client's bytes goes into proto3 `string` fields, which clients refuse to
// parse otherwise), at most kMaxClientMessageBytes (cut at a character,
// then "… (N bytes)"; a grpc-message over the client's metadata limit
// turns INVALID_ARGUMENT into RESOURCE_EXHAUSTED or INTERNAL).
std::string ClientMessage(absl::string_view message);

// 200 for OK; INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE → 400,
// UNAUTHENTICATED → 401, PERMISSION_DENIED → 403, NOT_FOUND → 404,
// ALREADY_EXISTS, ABORTED → 409, RESOURCE_EXHAUSTED → 429, CANCELLED → 499,
// UNIMPLEMENTED → 501, UNAVAILABLE → 503, DEADLINE_EXCEEDED → 504, the rest
// → 500.
int ToHttpStatus(absl::StatusCode code);

}  // namespace weft

#endif  // WEFT_SERVER_STATUS_H_
