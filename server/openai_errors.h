// OpenAI's error body, {"error": {"message", "type", "param", "code"}},
// built from an absl::Status. The HTTP status comes from ToHttpStatus
// (server/status.h); `param` (the request field at fault) and `code` (a
// machine-readable reason such as "model_not_found") travel as payloads on
// the status, so that the code deciding them need not know about HTTP.
#ifndef WEFT_SERVER_OPENAI_ERRORS_H_
#define WEFT_SERVER_OPENAI_ERRORS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace weft {

// `status` with the request field it is about, in the API's terms
// ("temperature", "messages[1].role").
absl::Status WithParam(absl::Status status, absl::string_view param);
// `status` with OpenAI's `code` ("context_length_exceeded").
absl::Status WithErrorCode(absl::Status status, absl::string_view code);
std::optional<std::string> ParamOf(const absl::Status& status);
std::optional<std::string> ErrorCodeOf(const absl::Status& status);

// INVALID_ARGUMENT "<param>: <what>" carrying `param`.
absl::Status InvalidParam(absl::string_view param, absl::string_view what);
// NOT_FOUND (404 model_not_found, param "model") for a model name other
// than the served one.
absl::Status ModelNotFound(absl::string_view name, absl::string_view served);
// FAILED_PRECONDITION (400, param "messages") for a chat on a model
// without a chat template; `alternative` is appended (", or use …").
absl::Status NoChatTemplate(absl::string_view alternative = "");

// "invalid_request_error" for 4xx, "authentication_error" for 401,
// "rate_limit_error" for 429, "server_error" for 5xx.
std::string ErrorType(int http_status);

// The JSON body (one line, no trailing newline).
std::string ErrorBody(int http_status, absl::string_view message,
                      std::optional<std::string> param = std::nullopt,
                      std::optional<std::string> code = std::nullopt);

struct HttpError {
  int status = 500;
  std::string body;
};
// `status` must not be OK.
HttpError ToHttpError(const absl::Status& status);

}  // namespace weft

#endif  // WEFT_SERVER_OPENAI_ERRORS_H_
