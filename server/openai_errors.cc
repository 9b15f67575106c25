#include "server/openai_errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include <nlohmann/json.hpp>
#include "server/status.h"

namespace weft {
namespace {

constexpr absl::string_view kParamUrl = "weft.openai/param";
constexpr absl::string_view kCodeUrl = "weft.openai/code";

std::optional<std::string> Payload(const absl::Status& status,
                                   absl::string_view url) {
  absl::optional<absl::Cord> payload = status.GetPayload(url);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

}  // namespace

absl::Status WithParam(absl::Status status, absl::string_view param) {
  status.SetPayload(kParamUrl, absl::Cord(param));
  return status;
}

absl::Status WithErrorCode(absl::Status status, absl::string_view code) {
  status.SetPayload(kCodeUrl, absl::Cord(code));
  return status;
}

std::optional<std::string> ParamOf(const absl::Status& status) {
  return Payload(status, kParamUrl);
}

std::optional<std::string> ErrorCodeOf(const absl::Status& status) {
  return Payload(status, kCodeUrl);
}

absl::Status InvalidParam(absl::string_view param, absl::string_view what) {
  return WithParam(absl::InvalidArgumentError(absl::StrCat(param, ": ", what)),
                   param);
}

absl::Status ModelNotFound(absl::string_view name, absl::string_view served) {
  return WithErrorCode(
      WithParam(absl::NotFoundError(absl::StrCat("The model '", name,
                                                 "' does not exist; this server "
                                                 "serves '", served, "'")),
                "model"),
      "model_not_found");
}

absl::Status NoChatTemplate(absl::string_view alternative) {
  return WithParam(absl::FailedPreconditionError(absl::StrCat(
                       "this model has no chat template: start weft-server with "
                       "--chat-template <file>", alternative)),
                   "messages");
}

std::string ErrorType(int http_status) {
  if (http_status == 401) return "authentication_error";
  if (http_status == 429) return "rate_limit_error";
  if (http_status >= 500) return "server_error";
  return "invalid_request_error";
}

std::string ErrorBody(int http_status, absl::string_view message,
                      std::optional<std::string> param,
                      std::optional<std::string> code) {
  nlohmann::ordered_json error = {
      {"message", std::string(message)},
      {"type", ErrorType(http_status)},
      {"param", nullptr},
      {"code", nullptr},
  };
  if (param) error["param"] = *param;
  if (code) error["code"] = *code;
  // Messages may quote client text: never fail on invalid UTF-8.
  return nlohmann::ordered_json{{"error", std::move(error)}}.dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

HttpError ToHttpError(const absl::Status& status) {
  HttpError error;
  error.status = ToHttpStatus(status.code());
  error.body = ErrorBody(error.status, status.message(), ParamOf(status),
                         ErrorCodeOf(status));
  return error;
}

}  // namespace weft
