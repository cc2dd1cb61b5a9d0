#include "proto/tls/tls_session.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/assert.h"

namespace runnel {

namespace {

// OpenSSL's queued errors as one line (and the queue emptied).
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    const char* reason = ERR_reason_error_string(e);
    out += reason != nullptr ? reason : buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

Status bad_file(std::string_view what, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) {
    const int err = errno;
    ERR_clear_error();
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("TLS {} '{}': cannot read it: {}", what, path, std::strerror(err)));
  }
  return Status(ErrorCode::kInvalidArgument, fmt::format("TLS {} '{}': {}", what, path, openssl_errors()));
}

SSL_CTX* new_context(bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  RUNNEL_ASSERT(ctx != nullptr);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Records go to memory BIOs; partial writes are the caller's to resume.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  return ctx;
}

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::for_server(const std::string& cert_file, const std::string& key_file,
                                                           const std::string& client_ca_file) {
  ERR_clear_error();
  SSL_CTX* ctx = new_context(true);
  std::shared_ptr<TlsContext> owned(new TlsContext(ctx, true));
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) return bad_file("certificate", cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) return bad_file("key", key_file);
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("TLS key '{}' does not match certificate '{}'", key_file, cert_file));
  }
  if (!client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, client_ca_file.c_str(), nullptr) != 1) {
      return bad_file("client CA", client_ca_file);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return owned;
}

Result<std::shared_ptr<TlsContext>> TlsContext::for_client(const std::string& ca_file, const std::string& cert_file,
                                                           const std::string& key_file) {
  ERR_clear_error();
  SSL_CTX* ctx = new_context(false);
  std::shared_ptr<TlsContext> owned(new TlsContext(ctx, false));
  if (ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return Status(ErrorCode::kInvalidArgument, "cannot load the system's trusted certificates: " + openssl_errors());
    }
  } else if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return bad_file("CA", ca_file);
  }
  if (!cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) return bad_file("certificate", cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) return bad_file("key", key_file);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return owned;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, std::string_view server_name)
    : context_(std::move(context)) {
  ssl_ = SSL_new(context_->get());
  RUNNEL_ASSERT(ssl_ != nullptr);
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  RUNNEL_ASSERT(in_ != nullptr && out_ != nullptr);
  BIO_set_mem_eof_return(in_, -1);  // An empty input means "wait for more", not end of stream.
  SSL_set_bio(ssl_, in_, out_);
  if (context_->is_server()) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    if (!server_name.empty()) {
      const std::string name(server_name);
      SSL_set_tlsext_host_name(ssl_, name.c_str());
      SSL_set1_host(ssl_, name.c_str());  // Checked against the certificate.
    }
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

Status TlsSession::error(int ret, std::string_view during) {
  failed_ = true;
  const int code = SSL_get_error(ssl_, ret);
  std::string why;
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    why = fmt::format("certificate verify failed: {}", X509_verify_cert_error_string(verify));
    ERR_clear_error();
  } else if (code == SSL_ERROR_ZERO_RETURN) {
    why = "the peer closed the TLS session";
  } else {
    why = openssl_errors();
  }
  return Status(ErrorCode::kUnauthenticated, fmt::format("TLS {} failed: {}", during, why));
}

Status TlsSession::drive() {
  if (!handshake_done_) {
    ERR_clear_error();
    const int ret = SSL_do_handshake(ssl_);
    if (ret != 1) {
      const int code = SSL_get_error(ssl_, ret);
      if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return Status::ok();
      return error(ret, "handshake");
    }
    handshake_done_ = true;
  }
  size_t off = 0;
  while (off < pending_plain_.size()) {
    size_t written = 0;
    ERR_clear_error();
    const int ret = SSL_write_ex(ssl_, pending_plain_.data() + off, pending_plain_.size() - off, &written);
    if (ret != 1) return error(ret, "write");
    off += written;
  }
  pending_plain_.clear();
  return Status::ok();
}

Status TlsSession::received(std::string_view cipher, std::string* plain) {
  if (failed_) return Status(ErrorCode::kUnauthenticated, "the TLS session has failed");
  while (!cipher.empty()) {
    const int n = BIO_write(in_, cipher.data(), static_cast<int>(std::min<size_t>(cipher.size(), 1 << 30)));
    RUNNEL_ASSERT(n > 0);
    cipher.remove_prefix(static_cast<size_t>(n));
  }
  if (Status s = drive(); !s) return s;
  if (!handshake_done_) return Status::ok();
  char buf[16384];
  while (true) {
    size_t got = 0;
    ERR_clear_error();
    const int ret = SSL_read_ex(ssl_, buf, sizeof(buf), &got);
    if (ret == 1) {
      plain->append(buf, got);
      continue;
    }
    const int code = SSL_get_error(ssl_, ret);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return Status::ok();
    if (code == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;  // Not a failure: the caller treats it as end of stream.
      return Status::ok();
    }
    return error(ret, "read");
  }
}

Status TlsSession::send(std::string_view plain) {
  if (failed_) return Status(ErrorCode::kUnauthenticated, "the TLS session has failed");
  pending_plain_.append(plain);
  return drive();
}

bool TlsSession::has_output() const { return BIO_ctrl_pending(out_) > 0; }

std::string TlsSession::take_output() {
  std::string out(BIO_ctrl_pending(out_), '\0');
  if (out.empty()) return out;
  const int n = BIO_read(out_, out.data(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string TlsSession::peer_common_name() const {
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (cert == nullptr) return "";
  char name[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof(name));
  X509_free(cert);
  return name;
}

std::string TlsSession::protocol() const { return handshake_done_ ? SSL_get_version(ssl_) : ""; }

}  // namespace runnel
