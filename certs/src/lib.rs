//! Certificates for a Sluice cluster: one CA, and one certificate per node and per client.
//!
//! Every link in Sluice is mutually authenticated TLS 1.3 over QUIC, so every process needs
//! the cluster CA (to verify its peers) and a certificate of its own signed by it. This crate
//! makes them with rcgen and writes them as PEM files:
//!
//! ```text
//! DIR/ca.pem   DIR/ca.key            the cluster CA (the key is 0600)
//! DIR/NAME.pem DIR/NAME.key          one per node or client (the key is 0600)
//! ```
//!
//! Node certificates may be used on both sides of a link (a broker is a server to clients and
//! a client of the keeper), so they carry both the serverAuth and clientAuth key usages; client
//! certificates carry clientAuth only. The subject alternative names are the name itself,
//! `localhost`, `127.0.0.1`, `::1` and any extra names asked for. The certificate's first DNS
//! name is the principal that servers see.
//!
//! Tests use the same API ([`CertAuthority::generate`], [`CertAuthority::issue`]) to make
//! throwaway CAs in temporary directories. Nothing here does network IO.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// File name of the CA certificate inside a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a certificate directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// Default validity of issued certificates.
pub const DEFAULT_VALIDITY_DAYS: i64 = 825;
/// Validity of the CA.
pub const CA_VALIDITY_DAYS: i64 = 3650;

/// Why making, reading or writing a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused to build or sign the certificate.
    #[error("could not generate {what}: {source}")]
    Generate {
        /// What was being made ("the CA", "the certificate for broker-1", ...).
        what: String,
        /// rcgen's reason.
        source: rcgen::Error,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// "cannot read" / "cannot write" / "cannot create directory".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS reason.
        source: std::io::Error,
    },
    /// A CA already exists where a new one was asked for.
    #[error("a CA already exists at {path}; pass --force to replace it (every certificate it signed stops being trusted)")]
    CaExists {
        /// The existing `ca.pem`.
        path: PathBuf,
    },
    /// There is no CA to sign with.
    #[error("no CA at {path}; create one first with `sluice certs init --dir {dir}`")]
    NoCa {
        /// The missing `ca.pem` or `ca.key`.
        path: PathBuf,
        /// The certificate directory.
        dir: PathBuf,
    },
    /// A PEM file exists but does not hold what it should.
    #[error("{path} is not a valid {what}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// "CA certificate" / "private key".
        what: &'static str,
        /// The parser's reason.
        reason: String,
    },
    /// A name that cannot be used as a certificate name or file name.
    #[error("invalid certificate name {name:?}: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

/// What a certificate is for; decides its extended key usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A server process (keeper, broker): serverAuth and clientAuth.
    Node,
    /// A client (CLI, SDK user): clientAuth only.
    Client,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Node => "node",
            Role::Client => "client",
        })
    }
}

/// What to put into one certificate.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// The principal: common name and first DNS name.
    pub name: String,
    /// Node or client.
    pub role: Role,
    /// Extra subject alternative names (host names or IP addresses).
    pub extra_sans: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl CertSpec {
    /// A certificate valid from now for [`DEFAULT_VALIDITY_DAYS`].
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        let now = OffsetDateTime::now_utc();
        CertSpec {
            name: name.into(),
            role,
            extra_sans: Vec::new(),
            // A little slack for clocks that disagree by a few minutes.
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(DEFAULT_VALIDITY_DAYS),
        }
    }

    /// Adds subject alternative names.
    pub fn with_sans(mut self, sans: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.extra_sans.extend(sans.into_iter().map(Into::into));
        self
    }

    /// Sets the validity window (tests use this to make expired certificates).
    pub fn valid_between(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    fn subject_alt_names(&self) -> Vec<SanType> {
        let mut names: Vec<String> = vec![self.name.clone(), "localhost".into()];
        names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
        names.extend(self.extra_sans.iter().cloned());
        let mut sans = Vec::new();
        for n in names {
            let san = match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => match n.clone().try_into() {
                    Ok(dns) => SanType::DnsName(dns),
                    Err(_) => continue,
                },
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        sans
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The principal name.
    pub name: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("IssuedCert").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A certificate authority that can sign node and client certificates.
pub struct CertAuthority {
    cert_pem: String,
    key: KeyPair,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

impl CertAuthority {
    /// Makes a new CA whose common name is `common_name` followed by an id taken from its
    /// key, so two clusters' CAs never share a name (a verifier would otherwise match a
    /// foreign certificate to our CA by name and fail on the signature, a confusing error).
    pub fn generate(common_name: &str) -> Result<Self, CertError> {
        let what = || "the CA".to_string();
        let key = KeyPair::generate().map_err(|source| CertError::Generate { what: what(), source })?;
        let id: String = key.public_key_raw().iter().rev().take(4).map(|b| format!("{b:02x}")).collect();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{common_name} {id}"));
        dn.push(DnType::OrganizationName, "Sluice");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key).map_err(|source| CertError::Generate { what: what(), source })?;
        let issuer_key = KeyPair::from_pem(&key.serialize_pem())
            .map_err(|source| CertError::Generate { what: what(), source })?;
        Ok(CertAuthority { cert_pem: cert.pem(), key, issuer: Issuer::new(params, issuer_key) })
    }

    /// Reads the CA from `dir/ca.pem` and `dir/ca.key`.
    pub fn load(dir: &Path) -> Result<Self, CertError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        for p in [&cert_path, &key_path] {
            if !p.exists() {
                return Err(CertError::NoCa { path: p.clone(), dir: dir.to_path_buf() });
            }
        }
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let invalid_key = |e: rcgen::Error| CertError::Invalid {
            path: key_path.clone(),
            what: "private key",
            reason: e.to_string(),
        };
        let key = KeyPair::from_pem(&key_pem).map_err(invalid_key)?;
        let issuer_key = KeyPair::from_pem(&key_pem).map_err(invalid_key)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, issuer_key).map_err(|e| CertError::Invalid {
            path: cert_path.clone(),
            what: "CA certificate",
            reason: e.to_string(),
        })?;
        Ok(CertAuthority { cert_pem, key, issuer })
    }

    /// The CA certificate, PEM: what every process puts in `tls.ca.file`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs a new certificate for `spec`.
    pub fn issue(&self, spec: &CertSpec) -> Result<IssuedCert, CertError> {
        check_name(&spec.name)?;
        let what = || format!("the certificate for {}", spec.name);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.name.as_str());
        dn.push(DnType::OrganizationName, "Sluice");
        params.distinguished_name = dn;
        params.subject_alt_names = spec.subject_alt_names();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match spec.role {
            Role::Node => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        let key = KeyPair::generate().map_err(|source| CertError::Generate { what: what(), source })?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| CertError::Generate { what: what(), source })?;
        Ok(IssuedCert { name: spec.name.clone(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Writes `ca.pem` and `ca.key` (0600) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), CertError> {
        create_dir(dir)?;
        write_public(&dir.join(CA_CERT_FILE), &self.cert_pem)?;
        write_private(&dir.join(CA_KEY_FILE), &self.key.serialize_pem())
    }
}

impl IssuedCert {
    /// Path of this certificate's PEM inside `dir`.
    pub fn cert_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.pem"))
    }

    /// Path of this certificate's key inside `dir`.
    pub fn key_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.key"))
    }

    /// Writes `NAME.pem` and `NAME.key` (0600) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), CertError> {
        create_dir(dir)?;
        write_public(&Self::cert_path(dir, &self.name), &self.cert_pem)?;
        write_private(&Self::key_path(dir, &self.name), &self.key_pem)
    }
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The CA certificate file.
    pub ca_cert: PathBuf,
    /// Every certificate file written, with its role.
    pub issued: Vec<(Role, PathBuf)>,
}

/// `sluice certs init`: a new CA in `dir` plus one certificate per node and per client.
///
/// Refuses to replace an existing CA unless `force` is set.
pub fn init(
    dir: &Path,
    nodes: &[String],
    clients: &[String],
    extra_sans: &[String],
    force: bool,
) -> Result<InitReport, CertError> {
    for name in nodes.iter().chain(clients) {
        check_name(name)?;
    }
    let ca_cert = dir.join(CA_CERT_FILE);
    if ca_cert.exists() && !force {
        return Err(CertError::CaExists { path: ca_cert });
    }
    let ca = CertAuthority::generate("Sluice cluster CA")?;
    ca.write(dir)?;
    let mut issued = Vec::new();
    for (role, names) in [(Role::Node, nodes), (Role::Client, clients)] {
        for name in names {
            let cert = ca.issue(&CertSpec::new(name.clone(), role).with_sans(extra_sans.iter().cloned()))?;
            cert.write(dir)?;
            issued.push((role, IssuedCert::cert_path(dir, name)));
        }
    }
    Ok(InitReport { ca_cert, issued })
}

/// `sluice certs issue`: one more certificate signed by the CA in `dir`.
pub fn issue(dir: &Path, spec: &CertSpec) -> Result<PathBuf, CertError> {
    let ca = CertAuthority::load(dir)?;
    let cert = ca.issue(spec)?;
    cert.write(dir)?;
    Ok(IssuedCert::cert_path(dir, &spec.name))
}

fn check_name(name: &str) -> Result<(), CertError> {
    let bad = |reason| Err(CertError::BadName { name: name.to_string(), reason });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name == "ca" {
        return bad("\"ca\" is the CA's own file name");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return bad("use letters, digits, '-', '_' and '.' only (it becomes a host name and a file name)");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("it must not start with '.' or '-'");
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Io {
        action: "cannot read",
        path: path.into(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        action: "cannot create directory",
        path: dir.into(),
        source,
    })
}

fn write_public(path: &Path, contents: &str) -> Result<(), CertError> {
    fs::write(path, contents).map_err(|source| CertError::Io {
        action: "cannot write",
        path: path.into(),
        source,
    })
}

/// Writes a private key readable by its owner only. The mode is set at creation, so the key
/// is never briefly world-readable; an existing file is replaced and re-moded.
fn write_private(path: &Path, contents: &str) -> Result<(), CertError> {
    let io = |source| CertError::Io { action: "cannot write", path: path.into(), source };
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path).map_err(io)?;
        f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io)?;
        f.write_all(contents.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }
    #[cfg(not(unix))]
    {
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(contents.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_ca_and_one_certificate_per_name_with_private_keys_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report =
            init(dir.path(), &["keeper-1".into()], &["cli".into()], &["kafka.example".into()], false)
                .expect("init");
        assert_eq!(report.issued.len(), 2);
        for f in ["ca.pem", "ca.key", "keeper-1.pem", "keeper-1.key", "cli.pem", "cli.key"] {
            assert!(dir.path().join(f).exists(), "{f} missing");
        }
        #[cfg(unix)]
        for f in ["ca.key", "keeper-1.key", "cli.key"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(f)).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
        }
        let pem = fs::read_to_string(dir.path().join("keeper-1.pem")).expect("read");
        let der = x509_der(&pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse");
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .expect("san ext")
            .expect("has sans")
            .value
            .general_names
            .iter()
            .map(|g| g.to_string())
            .collect();
        for want in
            ["DNSName(keeper-1)", "DNSName(localhost)", "IPAddress(7f:00:00:01)", "DNSName(kafka.example)"]
        {
            assert!(sans.iter().any(|s| s == want), "SAN {want} missing from {sans:?}");
        }
    }

    #[test]
    fn init_refuses_to_replace_a_ca_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path(), &[], &[], &[], false).expect("first init");
        let before = fs::read_to_string(dir.path().join(CA_CERT_FILE)).expect("read");
        let err = init(dir.path(), &[], &[], &[], false).expect_err("second init must refuse");
        assert!(matches!(err, CertError::CaExists { .. }), "{err}");
        assert!(err.to_string().contains("--force"));
        assert_eq!(before, fs::read_to_string(dir.path().join(CA_CERT_FILE)).expect("read"));
        init(dir.path(), &[], &[], &[], true).expect("forced init");
        assert_ne!(before, fs::read_to_string(dir.path().join(CA_CERT_FILE)).expect("read"));
    }

    #[test]
    fn issue_signs_with_the_existing_ca_and_names_a_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = issue(dir.path(), &CertSpec::new("b1", Role::Node)).expect_err("no CA yet");
        assert!(err.to_string().contains("sluice certs init"), "{err}");
        init(dir.path(), &[], &[], &[], false).expect("init");
        let path = issue(dir.path(), &CertSpec::new("b1", Role::Node)).expect("issue");
        let ca_der = x509_der(&fs::read_to_string(dir.path().join(CA_CERT_FILE)).expect("read"));
        let der = x509_der(&fs::read_to_string(path).expect("read"));
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("parse ca");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse");
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key())).expect("signed by the CA");
    }

    #[test]
    fn two_cas_never_share_a_subject_name() {
        let a = CertAuthority::generate("Sluice cluster CA").expect("a");
        let b = CertAuthority::generate("Sluice cluster CA").expect("b");
        let subject = |ca: &CertAuthority| {
            let der = x509_der(ca.cert_pem());
            let (_, c) = x509_parser::parse_x509_certificate(&der).expect("parse");
            c.subject().to_string()
        };
        assert_ne!(subject(&a), subject(&b));
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        for name in ["", "ca", "../etc", "a b", "-x"] {
            let err = CertAuthority::generate("t")
                .expect("ca")
                .issue(&CertSpec::new(name, Role::Client))
                .expect_err(name);
            assert!(matches!(err, CertError::BadName { .. }), "{name}: {err}");
        }
    }

    fn x509_der(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        p.contents
    }
}
