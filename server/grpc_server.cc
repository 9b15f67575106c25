#include "server/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"

namespace weft {

absl::Status GrpcServerConfig::Validate() const {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--port must be in [0, 65535], got ", port));
  }
  if (host.empty()) return absl::InvalidArgumentError("--host must not be empty");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const GrpcServerConfig& config, Engine* engine, ServedModel model,
    std::string backend) {
  if (auto s = config.Validate(); !s.ok()) return s;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<GrpcServer> server(new GrpcServer());
  server->service_ = std::make_unique<GenerationService>(engine, std::move(model),
                                                         std::move(backend));
  grpc::ServerBuilder builder;
  const std::string address = config.host.find(':') != std::string::npos
                                  ? absl::StrCat("[", config.host, "]:", config.port)
                                  : absl::StrCat(config.host, ":", config.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  return server;
}

void GrpcServer::Shutdown(absl::Duration drain) {
  if (server_ == nullptr) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + drain));
  server_->Wait();
  server_.reset();
}

GrpcServer::~GrpcServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace weft
