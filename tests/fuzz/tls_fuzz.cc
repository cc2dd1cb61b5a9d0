// libFuzzer target for what a TLS port does with a peer's first bytes:
// whatever arrives goes through OpenSSL's record and handshake parsing in a
// server session (proto/tls/tls_session.h). Nothing may crash; the session
// either waits for more, answers with handshake records, or fails with
// unauthenticated — and once failed it stays failed. The input is fed in
// pieces whose sizes its first byte picks, as a socket would deliver it.
//
// The server's certificate is made once, in memory, and written to a
// temporary directory (TlsContext loads PEM files).

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "core/assert.h"
#include "proto/tls/tls_session.h"

namespace {

std::shared_ptr<const runnel::TlsContext> make_context() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  RUNNEL_ASSERT(key != nullptr);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  RUNNEL_ASSERT(X509_sign(cert, key, EVP_sha256()) > 0);
  char dir[] = "/tmp/runnel-tls-fuzz.XXXXXX";
  RUNNEL_ASSERT(::mkdtemp(dir) != nullptr);
  const std::string cert_path = std::string(dir) + "/cert.pem", key_path = std::string(dir) + "/key.pem";
  FILE* f = std::fopen(cert_path.c_str(), "w");
  PEM_write_X509(f, cert);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  auto context = runnel::TlsContext::for_server(cert_path, key_path);
  RUNNEL_ASSERT(context.is_ok());
  std::remove(cert_path.c_str());
  std::remove(key_path.c_str());
  ::rmdir(dir);
  X509_free(cert);
  EVP_PKEY_free(key);
  return *context;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const runnel::TlsContext> context = make_context();
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64 * 37;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  runnel::TlsSession session(context);
  std::string plain;
  bool failed = false;
  while (!in.empty()) {
    const std::string_view chunk = in.substr(0, piece);
    in.remove_prefix(chunk.size());
    const runnel::Status s = session.received(chunk, &plain);
    if (!s.is_ok()) {
      RUNNEL_ASSERT(s.code() == runnel::ErrorCode::kUnauthenticated);
      failed = true;
    } else {
      RUNNEL_ASSERT(!failed);  // A failed session never recovers.
    }
    (void)session.take_output();
  }
  // Without a finished handshake no application bytes come out.
  RUNNEL_ASSERT(session.handshake_done() || plain.empty());
  return 0;
}
