#include "proto/tls/tls_session.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <cstdlib>
#include <filesystem>
#include <random>

namespace runnel {
namespace {

// A throwaway PKI (proto/tls/test_certs.sh), made once for the suite.
class TlsSessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() / ("runnel-tls-" + std::to_string(::getpid())));
    const std::string command = std::string("bash ") + RUNNEL_TEST_CERTS_SCRIPT + " " + *dir_;
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string file(const char* name) { return *dir_ + "/" + name; }

  static std::shared_ptr<TlsContext> server_context(bool require_client_cert = false) {
    auto ctx =
        TlsContext::for_server(file("server.pem"), file("server.key"), require_client_cert ? file("ca.pem") : "");
    EXPECT_TRUE(ctx.is_ok()) << ctx.status().to_string();
    return ctx.is_ok() ? *ctx : nullptr;
  }
  static std::shared_ptr<TlsContext> client_context(const char* ca = "ca.pem", bool with_cert = false) {
    auto ctx =
        TlsContext::for_client(file(ca), with_cert ? file("client.pem") : "", with_cert ? file("client.key") : "");
    EXPECT_TRUE(ctx.is_ok()) << ctx.status().to_string();
    return ctx.is_ok() ? *ctx : nullptr;
  }

  // Moves bytes both ways until neither side has output; the first error of
  // either side, if any.
  static Status pump(TlsSession& a, TlsSession& b, std::string* a_got, std::string* b_got) {
    for (int round = 0; round < 100; round++) {
      if (!a.has_output() && !b.has_output()) return Status::ok();
      if (Status s = b.received(a.take_output(), b_got); !s) return s;
      if (Status s = a.received(b.take_output(), a_got); !s) return s;
    }
    return Status(ErrorCode::kInternal, "no end to the exchange");
  }

  static std::string* dir_;
};
std::string* TlsSessionTest::dir_ = nullptr;

TEST_F(TlsSessionTest, HandshakesWithTls13AndCarriesBytesBothWays) {
  TlsSession server(server_context());
  TlsSession client(client_context(), "localhost");
  ASSERT_TRUE(client.send("hello before the handshake").is_ok());  // Waits for it.
  std::string at_client, at_server;
  ASSERT_TRUE(pump(client, server, &at_client, &at_server).is_ok());
  EXPECT_TRUE(client.handshake_done());
  EXPECT_TRUE(server.handshake_done());
  EXPECT_EQ(client.protocol(), "TLSv1.3");
  EXPECT_EQ(at_server, "hello before the handshake");
  // A megabyte of random bytes, fed back in odd-sized pieces.
  std::string big(1 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : big) c = static_cast<char>(rng());
  ASSERT_TRUE(server.send(big).is_ok());
  const std::string cipher = server.take_output();
  EXPECT_GT(cipher.size(), big.size());
  EXPECT_EQ(cipher.find(big.substr(1000, 64)), std::string::npos);  // Not in clear.
  at_client.clear();
  for (size_t off = 0; off < cipher.size();) {
    const size_t n = std::min<size_t>(cipher.size() - off, 1 + rng() % 5000);
    ASSERT_TRUE(client.received(std::string_view(cipher).substr(off, n), &at_client).is_ok());
    off += n;
  }
  EXPECT_EQ(at_client, big);
}

TEST_F(TlsSessionTest, AClientTrustingAnotherCaFailsWithAClearReason) {
  TlsSession server(server_context());
  TlsSession client(client_context("other-ca.pem"), "localhost");
  std::string a, b;
  ASSERT_TRUE(client.send("x").is_ok());
  Status s = pump(client, server, &a, &b);
  EXPECT_EQ(s.code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(s.message().find("certificate verify failed"), std::string::npos) << s.message();
  EXPECT_TRUE(b.empty());
}

TEST_F(TlsSessionTest, TheServerNameMustMatchTheCertificate) {
  TlsSession server(server_context());
  TlsSession client(client_context(), "runnel.example.com");
  std::string a, b;
  ASSERT_TRUE(client.send("x").is_ok());
  Status s = pump(client, server, &a, &b);
  EXPECT_NE(s.message().find("certificate verify failed"), std::string::npos) << s.message();
}

TEST_F(TlsSessionTest, ClientCertificatesAreRequiredWhenAClientCaIsSetAndNamed) {
  {
    TlsSession server(server_context(true));
    TlsSession client(client_context("ca.pem", false), "localhost");
    std::string a, b;
    ASSERT_TRUE(client.send("x").is_ok());
    EXPECT_FALSE(pump(client, server, &a, &b).is_ok());
    EXPECT_TRUE(b.empty());
  }
  TlsSession server(server_context(true));
  TlsSession client(client_context("ca.pem", true), "localhost");
  std::string a, b;
  ASSERT_TRUE(client.send("x").is_ok());
  ASSERT_TRUE(pump(client, server, &a, &b).is_ok());
  EXPECT_EQ(b, "x");
  EXPECT_EQ(server.peer_common_name(), "app-client");
}

TEST_F(TlsSessionTest, NothingBelowTls12IsAccepted) {
  auto client_ctx = client_context();
  SSL_CTX_set_min_proto_version(client_ctx->get(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(client_ctx->get(), TLS1_1_VERSION);
  TlsSession server(server_context());
  TlsSession client(client_ctx, "localhost");
  std::string a, b;
  ASSERT_TRUE(client.send("x").is_ok());
  EXPECT_FALSE(pump(client, server, &a, &b).is_ok());
}

TEST_F(TlsSessionTest, BadFilesAreNamedInTheError) {
  auto missing = TlsContext::for_server(file("nope.pem"), file("server.key"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("nope.pem"), std::string::npos) << missing.status().message();
  auto mismatched = TlsContext::for_server(file("server.pem"), file("client.key"));
  ASSERT_FALSE(mismatched.is_ok());
  EXPECT_NE(mismatched.status().message().find("client.key"), std::string::npos) << mismatched.status().message();
  auto not_pem = TlsContext::for_client(file("ca.srl"));
  EXPECT_FALSE(not_pem.is_ok());
}

TEST_F(TlsSessionTest, GarbageFromThePeerEndsTheSessionWithAnError) {
  TlsSession server(server_context());
  std::string plain;
  Status s = server.received("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &plain);
  EXPECT_EQ(s.code(), ErrorCode::kUnauthenticated);
  EXPECT_TRUE(plain.empty());
  EXPECT_FALSE(server.received("more", &plain).is_ok());
}

}  // namespace
}  // namespace runnel
