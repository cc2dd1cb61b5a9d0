#pragma once
// TLS without sockets: OpenSSL driven through memory BIOs, so that a
// connection keeps doing its own I/O (io_uring on the server, libuv in the
// client) and only hands bytes through here. received() takes whatever
// arrived on the socket and yields the application bytes it decrypts;
// send() encrypts application bytes; take_output() gives what must go on the
// wire next (handshake records, encrypted data, alerts). TLS 1.3, and 1.2 at
// the least.
//
// A TlsContext (an SSL_CTX: certificate, key, trusted CAs) is built once and
// shared by every session made from it; replacing it (a reload) affects only
// sessions made afterwards.

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace runnel {

class TlsContext {
 public:
  // A server's: its certificate chain and key (PEM files); with
  // `client_ca_file`, clients must present a certificate that CA signed.
  // kInvalidArgument naming the file and OpenSSL's reason otherwise.
  static Result<std::shared_ptr<TlsContext>> for_server(const std::string& cert_file, const std::string& key_file,
                                                        const std::string& client_ca_file = "");
  // A client's: trusts `ca_file` (PEM), or the system's store when empty;
  // optionally presents a certificate of its own.
  static Result<std::shared_ptr<TlsContext>> for_client(const std::string& ca_file = "",
                                                        const std::string& cert_file = "",
                                                        const std::string& key_file = "");
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }
  bool is_server() const { return server_; }

 private:
  TlsContext(SSL_CTX* ctx, bool server) : ctx_(ctx), server_(server) {}
  SSL_CTX* ctx_;
  bool server_;
};

class TlsSession {
 public:
  // `server_name`: a client's expected host (SNI and certificate check).
  explicit TlsSession(std::shared_ptr<const TlsContext> context, std::string_view server_name = "");
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Bytes read from the socket; decrypted application bytes are appended
  // to *plain. An error (a failed handshake, a bad record, an alert from the
  // peer) ends the session: its message says why ("certificate verify
  // failed: unable to get local issuer certificate").
  Status received(std::string_view cipher, std::string* plain);
  // Application bytes to send; encrypted once the handshake is done (until
  // then they wait in the session).
  Status send(std::string_view plain);
  // What to write to the socket now; empty if nothing.
  std::string take_output();
  bool has_output() const;

  bool handshake_done() const { return handshake_done_; }
  // The peer ended the session in order (close_notify): like end of stream.
  bool peer_closed() const { return peer_closed_; }
  // The peer certificate's subject common name ("" if none was presented).
  std::string peer_common_name() const;
  // "TLSv1.3" and the like, once the handshake is done.
  std::string protocol() const;

 private:
  Status drive();  // Handshake, then flush pending plaintext.
  Status error(int ret, std::string_view during);

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;          // Ciphertext from the peer (owned by ssl_).
  BIO* out_ = nullptr;         // Ciphertext to the peer (owned by ssl_).
  std::string pending_plain_;  // Sent before the handshake finished.
  bool handshake_done_ = false;
  bool failed_ = false;
  bool peer_closed_ = false;
};

}  // namespace runnel
