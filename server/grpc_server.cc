#include "server/grpc_server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace weft {

absl::Status GrpcServerConfig::Validate() const {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--port must be in [0, 65535], got ", port));
  }
  if (host.empty()) return absl::InvalidArgumentError("--host must not be empty");
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key must be given together");
  }
  if (!tls_client_ca.empty() && tls_cert.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca needs --tls_cert and --tls_key");
  }
  if (keepalive_seconds < 0 || keepalive_seconds > 86400 ||
      keepalive_timeout_seconds < 1 || keepalive_timeout_seconds > 86400) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--grpc_keepalive_seconds must be in [0, 86400] and "
        "--grpc_keepalive_timeout_seconds in [1, 86400], got ", keepalive_seconds,
        " and ", keepalive_timeout_seconds));
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    absl::string_view flag) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(flag, ": cannot read '", path, "'"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const GrpcServerConfig& config) {
  if (config.tls_cert.empty()) return grpc::InsecureServerCredentials();
  auto cert = ReadPem(config.tls_cert, "--tls_cert");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(config.tls_key, "--tls_key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!config.tls_client_ca.empty()) {
    auto ca = ReadPem(config.tls_client_ca, "--tls_client_ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const GrpcServerConfig& config, Engine* engine, ServedModel model,
    std::string backend, const ApiKeys* keys, ServerMetrics* metrics) {
  if (auto s = config.Validate(); !s.ok()) return s;
  auto credentials = Credentials(config);
  if (!credentials.ok()) return credentials.status();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<GrpcServer> server(new GrpcServer());
  server->engine_ = engine;
  server->service_ = std::make_unique<GenerationService>(
      engine, model, std::move(backend), keys, metrics);
  server->kserve_ =
      std::make_unique<KServeService>(engine, std::move(model), keys, metrics);
  grpc::ServerBuilder builder;
  const std::string address = config.host.find(':') != std::string::npos
                                  ? absl::StrCat("[", config.host, "]:", config.port)
                                  : absl::StrCat(config.host, ":", config.port);
  builder.AddListeningPort(address, *credentials, &server->port_);
  if (config.keepalive_seconds > 0) {
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, config.keepalive_seconds * 1000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                               config.keepalive_timeout_seconds * 1000);
    // Keep pinging a stream the server is not writing to (one queued
    // behind max_num_seqs): gRPC stops after 2 pings without data.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  // gRPC's default answers a client pinging more often than every 5
  // minutes (every 2 hours on a connection with no call) with GOAWAY
  // (too_many_pings); load balancers and clients commonly ping every
  // 10-30 s, idle connections included.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.RegisterService(server->service_.get());
  builder.RegisterService(server->kserve_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  return server;
}

void GrpcServer::Drain(absl::Duration drain) {
  if (server_ == nullptr) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  service_->StartDraining();
  kserve_->StartDraining();
  const absl::Time deadline = absl::Now() + drain;
  // Shutdown closes the listening port and sends GOAWAY at once, so that
  // clients and load balancers send new calls to another replica (a call
  // that races it is cancelled by gRPC: CANCELLED), and returns once every
  // call has ended. Requests end as the engine finishes them, or with
  // UNAVAILABLE when it stops at the deadline; calls that are left 5 s
  // after that (a client not reading, a health Watch, an idle KServe
  // stream) are cancelled.
  std::promise<void> shut;
  std::future<void> shut_down = shut.get_future();
  std::thread shutdown([this, &shut] {
    server_->Shutdown();
    shut.set_value();
  });
  // The engine also runs the HTTP front end's requests.
  while (engine_->stats().num_live_requests > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  engine_->Stop();  // what is left ends with UNAVAILABLE
  if (shut_down.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    grpc_server_cancel_all_calls(server_->c_server());
  }
  shutdown.join();
  server_->Wait();
  server_.reset();
}

void GrpcServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  server_.reset();
}

GrpcServer::~GrpcServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace weft
