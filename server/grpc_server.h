// The gRPC server around one engine: weft.v1.Generation, grpc.health.v1
// (SERVING once the model is loaded, NOT_SERVING while draining), the
// KServe v2 inference.GRPCInferenceService and server reflection.
#ifndef WEFT_SERVER_GRPC_SERVER_H_
#define WEFT_SERVER_GRPC_SERVER_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/generation_service.h"
#include "server/kserve_service.h"

namespace weft {

struct GrpcServerConfig {
  std::string host = "0.0.0.0";
  int port = 50051;  // 0: any free port (see GrpcServer::port())
  // PEM files. With a certificate and key the server speaks TLS only; with
  // a client CA too, clients must present a certificate it signed (mTLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // HTTP/2 keepalive: a connection idle this long is pinged, and one whose
  // peer does not answer within keepalive_timeout_seconds is closed, which
  // cancels its streams (their requests end and free their KV blocks).
  // Without it a client gone with no FIN or RST (a killed pod, a NAT that
  // forgot the flow) kept generating until TCP gave up, ~15 minutes. Client
  // pings are accepted every 10 s or slower. 0: no pings.
  int keepalive_seconds = 30;
  int keepalive_timeout_seconds = 10;

  absl::Status Validate() const;
};

class GrpcServer {
 public:
  // Binds and starts serving; health reports SERVING.
  // `keys` must outlive the server (an empty ApiKeys disables auth), and
  // so must `metrics` (null: nothing is recorded).
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const GrpcServerConfig& config, Engine* engine, ServedModel model,
      std::string backend, const ApiKeys* keys,
      ServerMetrics* metrics = nullptr);
  ~GrpcServer();

  int port() const { return port_; }
  // Graceful drain: health turns NOT_SERVING, the port closes and clients
  // get GOAWAY (new calls go elsewhere or fail UNAVAILABLE); requests in
  // flight get up to `drain` to finish; the engine then stops, ending the
  // rest with UNAVAILABLE; the server stops.
  void Drain(absl::Duration drain);
  // Stops the server; calls still open are cancelled after `grace`.
  void Shutdown(absl::Duration grace);

 private:
  GrpcServer() = default;
  Engine* engine_ = nullptr;
  std::unique_ptr<GenerationService> service_;
  std::unique_ptr<KServeService> kserve_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace weft

#endif  // WEFT_SERVER_GRPC_SERVER_H_
