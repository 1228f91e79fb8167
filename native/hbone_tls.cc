// HBONE TLS contexts and peer identity: TLS 1.3 only, ALPN h2 both ways, client certificates required, no SNI, no
// session resumption; OpenSSL is the copy the node binary exports (headers from Node's include directory).
#include "hbone_tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"

namespace smesh::hbone {

namespace {

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

std::string TakeSslErrors() {
  std::string out;
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// Server side: only h2 is served; a client offering ALPN without h2 gets a no_application_protocol alert.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen, void*) {
  unsigned int i = 0;
  while (i < inlen) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == 2 && in[i + 1] == 'h' && in[i + 2] == '2') {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

SSL_CTX* NewContext(bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) ThrowMessage("SSL_CTX_new failed: " + TakeSslErrors());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // Partial writes: the engine hands SSL_write up to 64 KiB and OpenSSL cuts 16 KiB records, returning after each
  // record the socket took; idle sessions drop their record buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_read_ahead(ctx, 1);
  if (server) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_set_alpn_protos(ctx, kAlpnH2, sizeof(kAlpnH2)) != 0) {
      SSL_CTX_free(ctx);
      ThrowMessage("SSL_CTX_set_alpn_protos failed");
    }
  }
  return ctx;
}

std::vector<X509*> ReadCertificates(const std::string& pem) {
  std::vector<X509*> certs;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return certs;
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) certs.push_back(x);
  BIO_free(bio);
  ERR_clear_error();  // the end of the PEM leaves a "no start line" error behind
  return certs;
}

void FreeCertificates(std::vector<X509*>& certs) {
  for (X509* x : certs) X509_free(x);
  certs.clear();
}

void UseChainAndKey(SSL_CTX* ctx, const std::vector<X509*>& chain, EVP_PKEY* key, const std::string& id) {
  if (SSL_CTX_use_certificate(ctx, chain[0]) != 1) ThrowMessage("identity " + id + ": the leaf certificate is not usable: " + TakeSslErrors());
  for (size_t i = 1; i < chain.size(); i++) {
    if (SSL_CTX_add1_chain_cert(ctx, chain[i]) != 1)
      ThrowMessage("identity " + id + ": chain certificate " + std::to_string(i) + " is not usable: " + TakeSslErrors());
  }
  if (SSL_CTX_use_PrivateKey(ctx, key) != 1) ThrowMessage("identity " + id + ": the private key is not usable: " + TakeSslErrors());
  if (SSL_CTX_check_private_key(ctx) != 1)
    ThrowMessage("identity " + id + ": the private key does not match the leaf certificate (chain must start with the leaf)");
}

}  // namespace

TlsIdentity::~TlsIdentity() {
  if (client != nullptr) SSL_CTX_free(client);
  if (server != nullptr) SSL_CTX_free(server);
}

void TlsStore::SetIdentity(const std::string& id, const std::string& chain_pem, const std::string& key_pem) {
  ERR_clear_error();
  std::vector<X509*> chain = ReadCertificates(chain_pem);
  if (chain.empty()) ThrowMessage("identity " + id + ": chainPem holds no PEM certificate");
  BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = kb ? PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr) : nullptr;
  if (kb) BIO_free(kb);
  if (key == nullptr) {
    FreeCertificates(chain);
    ERR_clear_error();
    ThrowMessage("identity " + id + ": keyPem holds no PEM private key");
  }
  auto ident = std::make_shared<TlsIdentity>();
  ident->id = id;
  try {
    ident->client = NewContext(false);
    ident->server = NewContext(true);
    UseChainAndKey(ident->client, chain, key, id);
    UseChainAndKey(ident->server, chain, key, id);
  } catch (...) {
    FreeCertificates(chain);
    EVP_PKEY_free(key);
    ERR_clear_error();
    throw;
  }
  FreeCertificates(chain);
  EVP_PKEY_free(key);
  std::lock_guard<std::mutex> lock(mu_);
  identities_[id] = std::move(ident);
}

bool TlsStore::RemoveIdentity(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return identities_.erase(id) > 0;
}

std::shared_ptr<TlsIdentity> TlsStore::Identity(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = identities_.find(id);
  return it == identities_.end() ? nullptr : it->second;
}

void TlsStore::SetTrustAnchors(const std::string& pem) {
  std::vector<X509*> certs = ReadCertificates(pem);
  if (certs.empty()) ThrowMessage("trust anchors: the PEM holds no certificate");
  X509_STORE* raw = X509_STORE_new();
  if (raw == nullptr) {
    FreeCertificates(certs);
    ThrowMessage("X509_STORE_new failed");
  }
  AnchorStore store(raw, X509_STORE_free);
  for (X509* x : certs) {
    if (X509_STORE_add_cert(raw, x) != 1) {
      // A duplicate root in the bundle is harmless; anything else is not.
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
        FreeCertificates(certs);
        ThrowMessage("trust anchors: a certificate cannot be added: " + TakeSslErrors());
      }
      ERR_clear_error();
    }
  }
  FreeCertificates(certs);
  std::lock_guard<std::mutex> lock(mu_);
  anchors_ = std::move(store);
}

AnchorStore TlsStore::Anchors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return anchors_;
}

bool UseAnchors(SSL* ssl, const AnchorStore& anchors) {
  if (!anchors) return false;
  return SSL_set1_verify_cert_store(ssl, anchors.get()) == 1;
}

std::string PeerSpiffeId(SSL* ssl) {
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (leaf == nullptr) return "";
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return "";
  std::string out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_URI) continue;
    const unsigned char* p = ASN1_STRING_get0_data(n->d.uniformResourceIdentifier);
    int len = ASN1_STRING_length(n->d.uniformResourceIdentifier);
    std::string uri(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
    if (uri.rfind("spiffe://", 0) == 0 && uri.find('\0') == std::string::npos) {
      out = std::move(uri);
      break;
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

const char* HandshakeFailureName(HandshakeFailure f) {
  switch (f) {
    case HandshakeFailure::kBadCertificate: return "bad_certificate";
    case HandshakeFailure::kNoCertificate: return "no_certificate";
    case HandshakeFailure::kNotTls: return "not_tls";
    case HandshakeFailure::kTlsError: return "tls_error";
    case HandshakeFailure::kTimeout: return "timeout";
    case HandshakeFailure::kNoAlpnH2: return "no_alpn_h2";
  }
  return "tls_error";
}

HandshakeFailure ClassifyHandshakeError(SSL* ssl, int ssl_error, int saved_errno, std::string* detail) {
  unsigned long first = ERR_peek_error();
  std::string text = TakeSslErrors();
  long verify = SSL_get_verify_result(ssl);
  if (ssl_error == SSL_ERROR_SYSCALL && first == 0) {
    *detail = saved_errno != 0 ? std::string("socket error during the handshake: ") + std::strerror(saved_errno)
                               : "the peer closed the connection during the handshake";
    return HandshakeFailure::kTlsError;
  }
  *detail = text.empty() ? "TLS handshake failed" : text;
  if (ERR_GET_LIB(first) == ERR_LIB_SSL) {
    switch (ERR_GET_REASON(first)) {
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_HTTP_REQUEST:
      case SSL_R_HTTPS_PROXY_REQUEST:
      case SSL_R_PACKET_LENGTH_TOO_LONG:
      case SSL_R_UNKNOWN_PROTOCOL:
      case SSL_R_RECORD_LENGTH_MISMATCH: return HandshakeFailure::kNotTls;
      case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: return HandshakeFailure::kNoCertificate;
      case SSL_R_NO_APPLICATION_PROTOCOL: return HandshakeFailure::kNoAlpnH2;
      case SSL_R_CERTIFICATE_VERIFY_FAILED:
        if (verify != X509_V_OK) *detail = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
        return HandshakeFailure::kBadCertificate;
      default: break;
    }
  }
  if (verify != X509_V_OK && SSL_get0_peer_certificate(ssl) != nullptr) {
    *detail = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    return HandshakeFailure::kBadCertificate;
  }
  return HandshakeFailure::kTlsError;
}

}  // namespace smesh::hbone
