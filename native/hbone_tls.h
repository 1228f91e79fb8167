// HBONE TLS material for the native engine: per-identity SSL_CTXs (TLS 1.3 only, ALPN h2, mutual auth), the trust
// anchors every new handshake verifies against, and the helpers that read a peer's SPIFFE id and classify failures.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace smesh::hbone {

// One workload identity's certificate chain and key, as a client and as a server context. Sessions keep the
// shared_ptr (and OpenSSL its own reference), so a rotation only affects handshakes that start after it.
struct TlsIdentity {
  TlsIdentity() = default;
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;
  ~TlsIdentity();
  std::string id;
  SSL_CTX* client = nullptr;
  SSL_CTX* server = nullptr;
};

using AnchorStore = std::shared_ptr<X509_STORE>;

// Process-wide, used from the JS thread (updates) and the workers (lookups) under one mutex.
class TlsStore {
 public:
  // Parses the PEMs and builds both contexts; throws NativeError naming what was wrong.
  void SetIdentity(const std::string& id, const std::string& chain_pem, const std::string& key_pem);
  bool RemoveIdentity(const std::string& id);
  std::shared_ptr<TlsIdentity> Identity(const std::string& id) const;
  // Replaces the trust anchors; throws NativeError when the PEM holds no certificate.
  void SetTrustAnchors(const std::string& pem);
  AnchorStore Anchors() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<TlsIdentity>> identities_;
  AnchorStore anchors_;
};

// Prepares `ssl` for a handshake: the current anchors as its verify store. False when there are none yet.
bool UseAnchors(SSL* ssl, const AnchorStore& anchors);

// The leaf's URI SAN that starts with spiffe:// ("" when it has none).
std::string PeerSpiffeId(SSL* ssl);

// Handshake failure classes, as HboneSessionEvent.reason of 'handshake_failed'.
enum class HandshakeFailure { kBadCertificate, kNoCertificate, kNotTls, kTlsError, kTimeout, kNoAlpnH2 };
const char* HandshakeFailureName(HandshakeFailure f);

// Classifies the OpenSSL error queue after a failed handshake step and clears it; `detail` gets a readable text.
HandshakeFailure ClassifyHandshakeError(SSL* ssl, int ssl_error, int saved_errno, std::string* detail);

}  // namespace smesh::hbone
