//! TLS 1.3 configuration for every Sluice link: the cluster CA, our certificate, the peer's
//! principal.
//!
//! Servers *require* a client certificate signed by the cluster CA; clients verify the
//! server's certificate against the same CA. The ring provider is passed explicitly
//! everywhere so that a second provider in the dependency tree can never make rustls panic.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// The ALPN every Sluice server also accepts, only to tell a client of another protocol or
/// version which protocol it *does* speak (see [`crate::server`]).
pub const NEGOTIATE_ALPN: &str = "sluice-negotiate";

/// Why TLS material could not be loaded or a TLS configuration not built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {key} {path}: {source}")]
    Read {
        /// The config key that names it (`tls.ca.file`, ...).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS reason.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the kind expected.
    #[error("{key} {path}: {reason}")]
    BadPem {
        /// The config key that names it.
        key: &'static str,
        /// The file, or `<memory>`.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (for example a key that does not match the certificate).
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// The key names, one naming across keeper, broker and clients.
pub mod keys {
    /// The cluster CA certificate.
    pub const CA: &str = "tls.ca.file";
    /// This process's certificate.
    pub const CERT: &str = "tls.cert.file";
    /// This process's private key.
    pub const KEY: &str = "tls.key.file";
}

/// Paths of the three TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `tls.ca.file`.
    pub ca: PathBuf,
    /// `tls.cert.file`.
    pub cert: PathBuf,
    /// `tls.key.file`.
    pub key: PathBuf,
}

/// Who we are (certificate and key) and whom we trust (the cluster CA).
pub struct TlsIdentity {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity { roots: self.roots.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl TlsIdentity {
    /// The principal this identity's certificate names (first DNS name, else CN).
    pub fn principal(&self) -> Option<Principal> {
        principal_of(self.chain.first()?.as_ref())
    }

    /// Reads the three PEM files.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let ca = read(keys::CA, &files.ca)?;
        let cert = read(keys::CERT, &files.cert)?;
        let key = read(keys::KEY, &files.key)?;
        Self::parse(&ca, &files.ca, &cert, &files.cert, &key, &files.key)
    }

    /// Builds an identity from PEM text held in memory.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let mem = Path::new("<memory>");
        Self::parse(ca_pem.as_bytes(), mem, cert_pem.as_bytes(), mem, key_pem.as_bytes(), mem)
    }

    fn parse(
        ca: &[u8],
        ca_path: &Path,
        cert: &[u8],
        cert_path: &Path,
        key: &[u8],
        key_path: &Path,
    ) -> Result<Self, TlsError> {
        let roots = parse_roots(ca, ca_path)?;
        let chain = parse_certs(keys::CERT, cert, cert_path)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::BadPem {
            key: keys::KEY,
            path: key_path.into(),
            reason: format!("no private key found ({e})"),
        })?;
        Ok(TlsIdentity { roots: Arc::new(roots), chain, key })
    }
}

/// What a client presents: the CA it trusts and, normally, its own certificate.
#[derive(Debug, Clone)]
pub struct ClientTls {
    roots: Arc<RootCertStore>,
    identity: Option<TlsIdentity>,
}

impl ClientTls {
    /// A client that proves who it is with `identity` (the normal case).
    pub fn new(identity: TlsIdentity) -> Self {
        ClientTls { roots: identity.roots.clone(), identity: Some(identity) }
    }

    /// The principal the client's certificate names, if it has one.
    pub fn principal(&self) -> Option<Principal> {
        self.identity.as_ref()?.principal()
    }

    /// A client with no certificate of its own. Sluice servers refuse it; this exists so
    /// tools can diagnose that refusal.
    pub fn without_certificate(ca_pem: &str) -> Result<Self, TlsError> {
        Ok(ClientTls {
            roots: Arc::new(parse_roots(ca_pem.as_bytes(), Path::new("<memory>"))?),
            identity: None,
        })
    }
}

impl From<TlsIdentity> for ClientTls {
    fn from(identity: TlsIdentity) -> Self {
        ClientTls::new(identity)
    }
}

/// QUIC transport settings shared by servers and clients.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// A connection with no traffic for this long is dead.
    pub idle_timeout: Duration,
    /// Keep-alive interval, so an idle but healthy connection never reaches `idle_timeout`.
    pub keep_alive: Duration,
    /// Streams the peer may have open at once (each RPC is one stream).
    pub max_concurrent_streams: u32,
    /// Per-stream receive window in bytes.
    pub stream_window: u32,
    /// UDP socket send and receive buffer sizes asked of the kernel.
    pub udp_buffer: usize,
    /// Largest UDP payload path-MTU discovery may try (it settles lower where the path needs,
    /// 1,452 on a 1,500-byte Ethernet path) and the largest an endpoint accepts. At most
    /// [`MAX_UDP_PAYLOAD`]: a larger value is used as that.
    pub max_udp_payload: u16,
}

/// The largest UDP payload worth probing for: quinn hands the kernel up to 10 datagrams in
/// one segmentation-offload send, which must fit one UDP datagram of 65,507 bytes. (With
/// larger payloads such sends fail, their packets count as lost, and the connection falls
/// back to 1,200-byte packets.)
pub const MAX_UDP_PAYLOAD: u16 = 6_500;

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(2),
            max_concurrent_streams: 4096,
            stream_window: 16 * 1024 * 1024,
            udp_buffer: 4 * 1024 * 1024,
            // Loopback and jumbo-frame links carry it; one 1,452-byte packet costs the sender
            // and the receiver nearly as much as one of 6,500, so on loopback it doubled the
            // transport's bulk rate (docs/benchmarks.md).
            max_udp_payload: MAX_UDP_PAYLOAD,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport(opts: &TransportOptions) -> Result<Arc<quinn::TransportConfig>, TlsError> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(opts.idle_timeout)
        .map_err(|_| TlsError::Config(format!("idle timeout {:?} is too long", opts.idle_timeout)))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(opts.keep_alive));
    t.max_concurrent_bidi_streams(opts.max_concurrent_streams.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.stream_receive_window(opts.stream_window.into());
    t.receive_window((u64::from(opts.stream_window) * 8).try_into().unwrap_or(quinn::VarInt::MAX));
    t.send_window(u64::from(opts.stream_window) * 8);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(opts.max_udp_payload.min(MAX_UDP_PAYLOAD));
    t.mtu_discovery_config(Some(mtu));
    Ok(Arc::new(t))
}

/// What a server needs to send QUIC stateless resets (RFC 9000 §10.3) that survive its
/// restart: the key its reset tokens are signed with and the key its connection ids are
/// validated with, both derived from its private key.
///
/// A server that restarts on the same address with the same identity derives the same keys,
/// so it recognises the connection ids of its previous life and tells their clients at once
/// that those connections are gone — the QUIC counterpart of a TCP reset. With random keys
/// per process those clients would wait out their idle timeout instead, which for a keeper
/// session can be most of the session timeout.
pub(crate) struct ResetKeys {
    /// Signs stateless reset tokens.
    pub(crate) token: ring::hmac::Key,
    /// Keys the hash in each connection id that tells ours from junk.
    pub(crate) cid: u64,
}

pub(crate) fn reset_keys(id: &TlsIdentity) -> ResetKeys {
    use ring::{hkdf, hmac};
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let secret = id.key.secret_der();
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"sluice quic stateless reset v1").extract(secret);
    // Neither expansion can fail: both outputs are far below HKDF's limit.
    let token = match prk.expand(&[b"reset token key"], hmac::HMAC_SHA256) {
        Ok(okm) => hmac::Key::from(okm),
        Err(_) => hmac::Key::new(hmac::HMAC_SHA256, secret),
    };
    let mut cid = [0u8; 8];
    if let Ok(okm) = prk.expand(&[b"connection id key"], Len(8)) {
        let _ = okm.fill(&mut cid);
    }
    ResetKeys { token, cid: u64::from_le_bytes(cid) }
}

/// A QUIC server configuration that requires client certificates from the cluster CA and
/// speaks `alpns`, preferred first (plus [`NEGOTIATE_ALPN`]).
pub fn server_config(
    id: &TlsIdentity,
    alpns: &[&str],
    opts: &TransportOptions,
) -> Result<quinn::ServerConfig, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(id.roots.clone(), provider())
        .build()
        .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| TlsError::Config(format!("{} does not match {}: {e}", keys::KEY, keys::CERT)))?;
    tls.alpn_protocols =
        alpns.iter().chain(std::iter::once(&NEGOTIATE_ALPN)).map(|a| a.as_bytes().to_vec()).collect();
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(transport(opts)?);
    Ok(cfg)
}

/// A TLS-over-TCP server configuration for the doors that speak other systems' protocols
/// (Kafka's `SSL` listener, ZooKeeper's `secureClientPort`): TLS 1.2 or 1.3 (their clients
/// still negotiate 1.2), a client certificate from the cluster CA required, as on QUIC.
pub fn tcp_server_config(id: &TlsIdentity) -> Result<rustls::ServerConfig, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(id.roots.clone(), provider())
        .build()
        .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| TlsError::Config(format!("{} does not match {}: {e}", keys::KEY, keys::CERT)))
}

/// The client side of [`tcp_server_config`]: trusts the cluster CA, presents `tls`'s
/// certificate (if any).
pub fn tcp_client_config(tls: &ClientTls) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(tls.roots.clone());
    match &tls.identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| TlsError::Config(format!("{} does not match {}: {e}", keys::KEY, keys::CERT))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// A QUIC client configuration that trusts the cluster CA, presents our certificate and asks
/// for `alpn` (plus [`NEGOTIATE_ALPN`] so a mismatch can be explained).
pub fn client_config(
    tls: &ClientTls,
    alpn: &str,
    opts: &TransportOptions,
) -> Result<quinn::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(tls.roots.clone());
    let mut cfg = match &tls.identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| TlsError::Config(format!("{} does not match {}: {e}", keys::KEY, keys::CERT)))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![alpn.as_bytes().to_vec(), NEGOTIATE_ALPN.as_bytes().to_vec()];
    let quic = QuicClientConfig::try_from(cfg).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(transport(opts)?);
    Ok(cfg)
}

/// The identity a peer proved with its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The certificate's first DNS subject alternative name, else its common name.
    pub name: String,
    /// Every DNS subject alternative name.
    pub dns_names: Vec<String>,
    /// The certificate may act as a server (extended key usage serverAuth, or no extended
    /// key usage at all): a cluster node's certificate, not a client's.
    pub server_auth: bool,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Reads the principal out of a peer's leaf certificate (DER).
pub fn principal_of(leaf: &[u8]) -> Option<Principal> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let dns_names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
    let name = dns_names.first().cloned().or(cn)?;
    let server_auth = match cert.extended_key_usage() {
        Ok(Some(eku)) => eku.value.server_auth || eku.value.any,
        Ok(None) => true,
        Err(_) => false,
    };
    Some(Principal { name, dns_names, server_auth })
}

/// The principal of the peer at the other end of `conn`.
pub fn peer_principal(conn: &quinn::Connection) -> Option<Principal> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    principal_of(chain.first()?.as_ref())
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { key, path: path.into(), source })
}

fn parse_certs(key: &'static str, pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| {
        TlsError::BadPem { key, path: path.into(), reason: format!("not a PEM certificate ({e})") }
    })?;
    if certs.is_empty() {
        return Err(TlsError::BadPem { key, path: path.into(), reason: "no certificate found".into() });
    }
    Ok(certs)
}

fn parse_roots(pem: &[u8], path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(keys::CA, pem, path)? {
        roots.add(cert).map_err(|e| TlsError::BadPem {
            key: keys::CA,
            path: path.into(),
            reason: format!("not a usable CA certificate ({e})"),
        })?;
    }
    Ok(roots)
}
