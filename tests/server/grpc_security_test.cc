// API keys, TLS and mTLS on weft-server's gRPC port, over loopback, with
// certificates made by openssl for the test.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "server/grpc_server.h"
#include "tests/engine/engine_harness.h"
#include "tests/test_util.h"

namespace weft {
namespace {

ModelPlan Plan() {
  ModelPlan plan;
  plan.max_num_tokens = 64;
  plan.max_num_logits = 16;
  plan.num_kv_blocks = 32;
  plan.block_size = 4;
  return plan;
}

EngineConfig Config() {
  EngineConfig config;
  config.scheduler.max_num_batched_tokens = 64;
  config.scheduler.max_num_seqs = 16;
  config.scheduler.max_num_logit_rows = 16;
  return config;
}

std::string Read(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class GrpcSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    harness_ = std::make_unique<test::EngineHarness>(
        test::TinyModelPath("tiny_llama"), Plan(), Config());
    ASSERT_TRUE(harness_->ok());
    harness_->engine().Start();
    dir_ = test::MakeScratchDir("weft_tls_test");
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(5));
    harness_->engine().Stop();
    test::RemoveScratchDir(dir_);
  }

  void StartServer(const GrpcServerConfig& config) {
    ServedModel model;
    model.name = "tiny";
    model.tokenizer = &harness_->tokenizer();
    model.vocab_size = harness_->tokenizer().vocab_size();
    model.max_model_len = harness_->engine().max_model_len();
    auto server = GrpcServer::Start(config, &harness_->engine(), model, "cpu", &keys_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // CA, server certificate for localhost / 127.0.0.1, client certificate.
  void MakeCertificates() {
    const std::string d = dir_.string();
    const std::string script =
        "cd '" + d + "' && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
        "-days 2 -subj /CN=weft-test-ca && "
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
        "-subj /CN=localhost && "
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out server.pem -days 2 -extfile san.ext && "
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
        "-subj /CN=client && "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out client.pem -days 2";
    ASSERT_EQ(std::system((script + " > openssl.log 2>&1").c_str()), 0)
        << Read(dir_ / "openssl.log");
  }

  std::unique_ptr<v1::Generation::Stub> Stub(
      std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return v1::Generation::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), credentials, args));
  }

  grpc::Status GetLoad(v1::Generation::Stub* stub, const std::string& key = "") {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!key.empty()) context.AddMetadata("authorization", "Bearer " + key);
    v1::Load load;
    return stub->GetLoad(&context, v1::GetLoadRequest(), &load);
  }

  std::unique_ptr<test::EngineHarness> harness_;
  ApiKeys keys_;
  std::unique_ptr<GrpcServer> server_;
  std::filesystem::path dir_;
};

TEST_F(GrpcSecurityTest, ApiKeysAdmitTheRightKeyOnly) {
  auto keys = ApiKeys::FromText("acme " + Sha256Hex("secret") + "\n", "keys");
  ASSERT_TRUE(keys.ok());
  keys_ = *keys;
  GrpcServerConfig config;
  config.host = "127.0.0.1";
  config.port = 0;
  StartServer(config);
  auto stub = Stub(grpc::InsecureChannelCredentials());
  EXPECT_EQ(GetLoad(stub.get()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetLoad(stub.get(), "wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(GetLoad(stub.get(), "secret").ok());

  // A stream with the right key runs and reports the client's own id.
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer secret");
  v1::GenerateRequest request;
  request.set_request_id("mine");
  request.mutable_token_ids()->add_ids(5);
  request.mutable_stopping()->set_max_tokens(3);
  request.mutable_stopping()->set_ignore_eos(true);
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  std::string final_id;
  while (reader->Read(&response)) {
    if (response.has_final()) final_id = response.final().request_id();
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(final_id, "mine");
  grpc::ClientContext no_key;
  auto refused = stub->Generate(&no_key, request);
  while (refused->Read(&response)) {
  }
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(GrpcSecurityTest, TlsServesTrustingClientsOnly) {
  MakeCertificates();
  GrpcServerConfig config;
  config.host = "127.0.0.1";
  config.port = 0;
  config.tls_cert = (dir_ / "server.pem").string();
  config.tls_key = (dir_ / "server.key").string();
  StartServer(config);
  grpc::SslCredentialsOptions trusting;
  trusting.pem_root_certs = Read(dir_ / "ca.pem");
  EXPECT_TRUE(GetLoad(Stub(grpc::SslCredentials(trusting)).get()).ok());
  EXPECT_FALSE(GetLoad(Stub(grpc::InsecureChannelCredentials()).get()).ok());
  EXPECT_FALSE(GetLoad(Stub(grpc::SslCredentials({})).get()).ok());  // no CA
}

TEST_F(GrpcSecurityTest, MutualTlsRequiresAClientCertificate) {
  MakeCertificates();
  GrpcServerConfig config;
  config.host = "127.0.0.1";
  config.port = 0;
  config.tls_cert = (dir_ / "server.pem").string();
  config.tls_key = (dir_ / "server.key").string();
  config.tls_client_ca = (dir_ / "ca.pem").string();
  StartServer(config);
  grpc::SslCredentialsOptions anonymous;
  anonymous.pem_root_certs = Read(dir_ / "ca.pem");
  EXPECT_FALSE(GetLoad(Stub(grpc::SslCredentials(anonymous)).get()).ok());
  grpc::SslCredentialsOptions with_cert = anonymous;
  with_cert.pem_private_key = Read(dir_ / "client.key");
  with_cert.pem_cert_chain = Read(dir_ / "client.pem");
  EXPECT_TRUE(GetLoad(Stub(grpc::SslCredentials(with_cert)).get()).ok());
}

TEST(GrpcServerConfigTest, KeepaliveMustBeNonNegativeWithAPositiveTimeout) {
  GrpcServerConfig config;
  EXPECT_TRUE(config.Validate().ok());
  config.keepalive_seconds = 0;  // off
  EXPECT_TRUE(config.Validate().ok());
  config.keepalive_seconds = -1;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  config = GrpcServerConfig();
  config.keepalive_timeout_seconds = 0;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GrpcServerConfigTest, TlsFlagsMustComeTogether) {
  GrpcServerConfig config;
  config.tls_cert = "cert.pem";
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  config = GrpcServerConfig();
  config.tls_client_ca = "ca.pem";
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
  config = GrpcServerConfig();
  config.port = 70000;
  EXPECT_EQ(config.Validate().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft
