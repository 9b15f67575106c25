// The one place where absl::Status becomes a gRPC status (HTTP joins it
// with the OpenAI-compatible front end). Codes map one to one; the message
// is kept.
#ifndef WEFT_SERVER_STATUS_H_
#define WEFT_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace weft {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace weft

#endif  // WEFT_SERVER_STATUS_H_
