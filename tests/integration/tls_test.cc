// TLS on both ports against the real runneld (--tls-cert/--tls-key, two
// shards, loopback ports of its own), with a throwaway PKI from
// proto/tls/test_certs.sh: librunnel round trips (append, read, subscribe),
// curl --cacert and openssl s_client on the ports, a client trusting
// another CA refused with a clear reason, plaintext refused, client
// certificates naming a token, and a certificate reloaded on SIGHUP while
// an open connection keeps going.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "runnel/blocking_client.h"
#include "tests/integration/process.h"

namespace runnel::testing {
namespace {

using client::BlockingClient;
using client::ErrorCode;
using namespace std::chrono_literals;

// Runs a shell command; its stdout and stderr, and its exit status.
std::pair<int, std::string> shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto [rc, out] = shell(fmt::format("bash {} {}", RUNNEL_TEST_CERTS_SCRIPT, certs()));
    ASSERT_EQ(rc, 0) << out;
  }

  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data-dir",     dir_.path() + "/data",   "--listen",  "127.0.0.1:0",
                                     "--admin-listen", "127.0.0.1:0",           "--shards",  "2",
                                     "--tls-cert",     certs() + "/server.pem", "--tls-key", certs() + "/server.key"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string error;
    server_ = RunneldProcess::start(args, {}, &error);
    ASSERT_NE(server_, nullptr) << error;
  }

  std::string certs() const { return dir_.path() + "/certs"; }

  std::unique_ptr<BlockingClient> client(const std::string& ca, const std::string& token = "",
                                         const std::string& cert = "") {
    return std::make_unique<BlockingClient>(client::ClientOptions{
        .host = "localhost",
        .port = static_cast<uint16_t>(server_->binary().port),
        .token = token,
        .request_timeout_ms = 5000,
        .tls = true,
        .tls_ca_file = certs() + "/" + ca,
        .tls_cert_file = cert.empty() ? "" : certs() + "/" + cert + ".pem",
        .tls_key_file = cert.empty() ? "" : certs() + "/" + cert + ".key",
    });
  }

  TempDir dir_;
  std::unique_ptr<RunneldProcess> server_;
};

TEST_F(TlsTest, LibrunnelAppendsReadsAndSubscribesOverTls) {
  start();
  auto c = client("ca.pem");
  ASSERT_TRUE(c->create_bucket("secure").ok());
  ASSERT_TRUE(c->create_stream("secure", "s").ok());
  std::vector<client::AppendRecord> records;
  for (int i = 0; i < 2000; i++) records.push_back({.body = std::string(1000, static_cast<char>('a' + i % 26))});
  for (int batch = 0; batch < 5; batch++) {
    auto ack =
        c->append("secure", "s", std::vector(records.begin() + batch * 400, records.begin() + batch * 400 + 400));
    ASSERT_TRUE(ack.ok()) << ack.status().to_string();
  }
  uint64_t read = 0;
  while (read < 2000) {
    auto page = c->read("secure", "s", {.start = client::Start::seq_num(read)});
    ASSERT_TRUE(page.ok()) << page.status().to_string();
    for (const auto& r : page->records) {
      ASSERT_EQ(r.body, records[r.seq_num].body);
      read++;
    }
  }
  auto sub = c->subscribe("secure", "s", {.start = client::Start::seq_num(1990)});
  for (uint64_t seq = 1990; seq < 2000; seq++) {
    auto r = sub->next(5s);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->seq_num, seq);
  }
}

TEST_F(TlsTest, CurlAndOpensslReachBothPortsAndAnotherCaIsRefused) {
  start();
  auto [rc, out] =
      shell(fmt::format("curl -sS --cacert {}/ca.pem https://localhost:{}/health", certs(), server_->admin().port));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"status\":\"ok\""), std::string::npos) << out;
  auto [bad_rc, bad] = shell(
      fmt::format("curl -sS --cacert {}/other-ca.pem https://localhost:{}/health", certs(), server_->admin().port));
  EXPECT_NE(bad_rc, 0) << bad;
  auto [plain_rc, plain] = shell(fmt::format("curl -sS http://localhost:{}/health", server_->admin().port));
  EXPECT_NE(plain_rc, 0) << plain;
  for (int port : {server_->binary().port, server_->admin().port}) {
    auto [s_rc, s_out] = shell(fmt::format(
        "echo | timeout 10 openssl s_client -connect 127.0.0.1:{} -CAfile {}/ca.pem -brief", port, certs()));
    EXPECT_NE(s_out.find("Protocol version: TLSv1.3"), std::string::npos) << s_out;
    EXPECT_NE(s_out.find("CONNECTION ESTABLISHED"), std::string::npos) << s_out;
  }
  // The CLI: a round trip, and a clear reason (exit 8) with the wrong CA.
  const std::string cli =
      fmt::format("{} --server localhost:{} --tls-ca {}/", RUNNEL_CLI_PATH, server_->binary().port, certs());
  auto [made_rc, made] = shell(cli + "ca.pem bucket create from-cli");
  EXPECT_EQ(made_rc, 0) << made;
  auto [list_rc, list] = shell(cli + "ca.pem bucket list");
  EXPECT_EQ(list, "from-cli\n");
  auto [cli_bad_rc, cli_bad] = shell(cli + "other-ca.pem bucket list");
  EXPECT_EQ(cli_bad_rc, 8) << cli_bad;
  EXPECT_NE(cli_bad.find("certificate verify failed"), std::string::npos) << cli_bad;
  auto wrong = client("other-ca.pem")->list_buckets();
  EXPECT_EQ(wrong.status().code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(wrong.status().message().find("certificate verify failed"), std::string::npos)
      << wrong.status().to_string();
}

TEST_F(TlsTest, AClientCertificateNamesItsToken) {
  start({"--auth", "--tls-client-ca", certs() + "/ca.pem"});
  std::string root = [&] {
    std::ifstream in(dir_.path() + "/data/root-token");
    std::string s;
    std::getline(in, s);
    return s;
  }();
  // Without a client certificate the handshake fails, token or not, and
  // the client hears why (the server's alert) rather than timing out.
  auto no_cert = client("ca.pem", root)->list_buckets();
  EXPECT_EQ(no_cert.status().code(), ErrorCode::kUnauthenticated) << no_cert.status().to_string();
  EXPECT_NE(no_cert.status().message().find("TLS"), std::string::npos) << no_cert.status().to_string();
  // The CLI presents one with --tls-cert/--tls-key.
  auto [cli_rc, cli_out] =
      shell(fmt::format("{0} --server localhost:{1} --tls-ca {2}/ca.pem --tls-cert {2}/client.pem "
                        "--tls-key {2}/client.key --token {3} bucket list",
                        RUNNEL_CLI_PATH, server_->binary().port, certs(), root));
  EXPECT_EQ(cli_rc, 0) << cli_out;
  // With one: the token and its secret still work...
  auto admin = client("ca.pem", root, "client");
  ASSERT_TRUE(admin->create_bucket("certs").ok());
  // ...and without a token, the certificate's CN names one (app-client).
  EXPECT_EQ(client("ca.pem", "", "client")->list_buckets().status().code(), ErrorCode::kUnauthenticated);
  client::TokenInfo t;
  t.id = "app-client";
  t.ops = kOpRead;
  ASSERT_TRUE(admin->issue_token(t).ok());
  auto by_cert = client("ca.pem", "", "client");
  auto listed = by_cert->list_buckets();
  ASSERT_TRUE(listed.ok()) << listed.status().to_string();
  EXPECT_EQ(by_cert->create_bucket("nope").status().code(), ErrorCode::kPermissionDenied);
}

TEST_F(TlsTest, SighupReloadsTheCertificateAndOpenConnectionsKeepGoing) {
  start();
  auto before = client("ca.pem");
  ASSERT_TRUE(before->create_bucket("reload").ok());
  // A new certificate for the same files, from the other CA.
  auto [rc, out] = shell(fmt::format(
      "cd {0} && openssl req -new -key server.key -subj /CN=localhost -out s.csr && "
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > s.ext && "
      "openssl x509 -req -in s.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -days 2 -extfile s.ext "
      "-out server.pem.new && mv server.pem.new server.pem",
      certs()));
  ASSERT_EQ(rc, 0) << out;
  ASSERT_EQ(::kill(server_->pid(), SIGHUP), 0);
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; i++) {
    reloaded = client("other-ca.pem")->list_buckets().ok();
    if (!reloaded) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(reloaded);
  EXPECT_FALSE(client("ca.pem")->list_buckets().ok());  // New connections: the new certificate.
  EXPECT_TRUE(before->get_bucket("reload").ok());       // The open one goes on.
  // A broken file is refused and the server keeps the last good one.
  std::ofstream(certs() + "/server.pem") << "not a certificate\n";
  ASSERT_EQ(::kill(server_->pid(), SIGHUP), 0);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(client("other-ca.pem")->list_buckets().ok());
  EXPECT_NE(server_->stderr_text().find("TLS not reloaded"), std::string::npos);
}

TEST(TlsStartup, BadCertificateFilesStopTheStartWithTheirName) {
  TempDir dir;
  RunResult r = run_runneld({"--data-dir", dir.path(), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                             "--tls-cert", dir.path() + "/missing.pem", "--tls-key", dir.path() + "/missing.key"},
                            {});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("missing.pem"), std::string::npos) << r.err;
  RunResult half = run_runneld({"--data-dir", dir.path(), "--tls-cert", dir.path() + "/c.pem"}, {});
  EXPECT_NE(half.exit_code, 0);
  EXPECT_NE(half.err.find("go together"), std::string::npos) << half.err;
}

}  // namespace
}  // namespace runnel::testing
