//! Znode ACLs with ZooKeeper's model: every node has a list of [`Acl`] entries, each
//! granting permission bits ([`perms`]) to an identity (`scheme:id`); a request is allowed
//! when one entry with the needed bit matches one of the identities its connection holds
//! ([`Id`]).
//!
//! Schemes, as ZooKeeper's authentication providers:
//!
//! - `world:anyone` matches every connection.
//! - `x509:<name>` matches a connection whose client certificate names `<name>` (the same
//!   principal the brokers see: the first DNS SAN, else the CN).
//! - `ip:<address>[/<bits>]` matches a connection from that address or network.
//! - `digest:<user>:<base64 SHA-1 of user:password>` matches a connection that sent
//!   `addauth digest <user>:<password>` (the shell computes the digest; see
//!   [`digest_input`]).
//! - `auth` is only written, never stored: on create and setACL it stands for every
//!   authenticated identity the connection holds (x509 and digest), as ZooKeeper's
//!   `fixupACL` expands it.
//!
//! A connection holding [`super_id`] passes every check (ZooKeeper's super user: a principal
//! named by `X509AuthenticationProvider.superUser`, or `addauth digest` with the password of
//! `DigestAuthenticationProvider.superDigest`).
//!
//! Which permission each operation needs is ZooKeeper's (checked in [`crate::tree`] and
//! [`crate::server`]): create and delete need
//! CREATE and DELETE on the parent; setData WRITE, getData / getChildren / check READ and
//! setACL ADMIN on the node; getACL READ or ADMIN; exists, sync and getEphemerals nothing.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::KeeperError;

/// ZooKeeper's permission bits.
pub mod perms {
    /// Read the node's data and list its children.
    pub const READ: i32 = 1;
    /// Set the node's data.
    pub const WRITE: i32 = 1 << 1;
    /// Create children.
    pub const CREATE: i32 = 1 << 2;
    /// Delete children.
    pub const DELETE: i32 = 1 << 3;
    /// Set the node's ACL.
    pub const ADMIN: i32 = 1 << 4;
    /// Every permission.
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// An identity a connection holds: a scheme and an id within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id {
    /// `x509`, `ip`, `digest` or `super`.
    pub scheme: String,
    /// The principal, address or `user:digest`.
    pub id: String,
}

impl Id {
    /// An identity.
    pub fn new(scheme: &str, id: &str) -> Id {
        Id { scheme: scheme.into(), id: id.into() }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.scheme, self.id)
    }
}

/// The identity that passes every check.
pub fn super_id() -> Id {
    Id::new("super", "")
}

/// One ACL entry: permissions for an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Acl {
    /// The permission bits ([`perms`]).
    pub perms: i32,
    /// The scheme.
    pub scheme: String,
    /// The identity within the scheme.
    pub id: String,
}

impl Acl {
    /// An entry.
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl { perms, scheme: scheme.into(), id: id.into() }
    }

    /// `world:anyone` with every permission (ZooKeeper's `OPEN_ACL_UNSAFE`).
    pub fn open() -> Acl {
        Acl::new(perms::ALL, "world", "anyone")
    }

    /// `world:anyone` may read (ZooKeeper's `READ_ACL_UNSAFE`).
    pub fn read_only() -> Acl {
        Acl::new(perms::READ, "world", "anyone")
    }
}

impl std::fmt::Display for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.scheme, self.id, perms_text(self.perms))
    }
}

/// The permission bits as zkCli writes them (`cdrwa`, in that order).
pub fn perms_text(p: i32) -> String {
    [(perms::CREATE, 'c'), (perms::DELETE, 'd'), (perms::READ, 'r'), (perms::WRITE, 'w'), (perms::ADMIN, 'a')]
        .iter()
        .filter(|(bit, _)| p & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// Reads zkCli's permission letters (`cdrwa`, any order).
pub fn parse_perms(text: &str) -> Result<i32, KeeperError> {
    let mut p = 0;
    for c in text.chars() {
        p |= match c.to_ascii_lowercase() {
            'c' => perms::CREATE,
            'd' => perms::DELETE,
            'r' => perms::READ,
            'w' => perms::WRITE,
            'a' => perms::ADMIN,
            _ => {
                return Err(KeeperError::InvalidAcl {
                    what: format!("{text:?} is not a permission string: use the letters c, d, r, w and a"),
                })
            }
        };
    }
    Ok(p)
}

/// Reads zkCli's ACL syntax: entries `scheme:id:perms` separated by commas (the id may hold
/// colons, as a digest's `user:hash` does).
pub fn parse_acl(text: &str) -> Result<Vec<Acl>, KeeperError> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || {
            KeeperError::InvalidAcl {
            what: format!("{entry:?} is not an ACL entry: write scheme:id:perms, e.g. world:anyone:r or x509:alice:cdrwa"),
        }
        };
        let (scheme, rest) = entry.split_once(':').ok_or_else(bad)?;
        let (id, perms) = rest.rsplit_once(':').ok_or_else(bad)?;
        out.push(Acl::new(parse_perms(perms)?, scheme, id));
    }
    if out.is_empty() {
        return Err(KeeperError::InvalidAcl { what: "an ACL needs at least one entry".into() });
    }
    Ok(out)
}

/// The text a digest identity hashes: ZooKeeper's `DigestAuthenticationProvider` stores
/// `user:base64(sha1("user:password"))`. `auth` is what `addauth digest` sent
/// (`user:password`); returns the user, for the caller to build `user:<hash>`.
pub fn digest_input(auth: &str) -> Result<&str, KeeperError> {
    match auth.split_once(':') {
        Some((user, _)) if !user.is_empty() => Ok(user),
        _ => Err(KeeperError::AuthFailed { what: "addauth digest takes user:password".into() }),
    }
}

/// Who may do anything: the super users a server is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperUsers {
    /// Certificate principals (`X509AuthenticationProvider.superUser`).
    pub x509: Vec<String>,
    /// `user:<digest>` identities (`DigestAuthenticationProvider.superDigest`).
    pub digest: Vec<String>,
}

impl SuperUsers {
    /// The identities a new connection holds: its certificate principal (`x509`), its address
    /// (`ip`), and [`super_id`] if the principal is a super user.
    pub fn connection_ids(&self, principal: Option<&str>, ip: IpAddr) -> Vec<Id> {
        let mut ids = vec![Id::new("ip", &canonical_ip(ip).to_string())];
        if let Some(p) = principal {
            ids.push(Id::new("x509", p));
            if self.x509.iter().any(|s| s == p) {
                ids.push(super_id());
            }
        }
        ids
    }

    /// Adds an identity proven with `addauth` (a digest already computed) to `ids`, and
    /// [`super_id`] if it is the super digest. Nothing is added twice.
    pub fn add(&self, ids: &mut Vec<Id>, id: Id) {
        let is_super = id.scheme == "digest" && self.digest.contains(&id.id);
        for new in std::iter::once(id).chain(is_super.then(super_id)) {
            if !ids.contains(&new) {
                ids.push(new);
            }
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (a dual-stack socket reports
/// `::ffff:a.b.c.d`; ACLs name `a.b.c.d`).
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether an `ip` ACL id (`address` or `address/bits`) covers `client`.
fn ip_matches(acl_id: &str, client: &str) -> bool {
    let (addr, bits) = match acl_id.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (acl_id, None),
    };
    let (Ok(net), Ok(client)) = (addr.parse::<IpAddr>(), client.parse::<IpAddr>()) else { return false };
    match (net, client) {
        (IpAddr::V4(n), IpAddr::V4(c)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(c) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(c)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(c) & mask
        }
        _ => false,
    }
}

/// Whether `ids` may do `perm` on a node with `acl` (ZooKeeper's `checkACL`): a super user
/// may; an empty ACL lets everyone; otherwise an entry with one of `perm`'s bits must
/// match one of `ids`.
pub fn allows(acl: &[Acl], perm: i32, ids: &[Id]) -> bool {
    if acl.is_empty() || ids.iter().any(|i| i.scheme == "super") {
        return true;
    }
    acl.iter().filter(|a| a.perms & perm != 0).any(|a| {
        (a.scheme == "world" && a.id == "anyone")
            || ids.iter().any(|i| {
                i.scheme == a.scheme && if a.scheme == "ip" { ip_matches(&a.id, &i.id) } else { i.id == a.id }
            })
    })
}

/// [`allows`], or `NoAuth` naming the node, the permission and who asked.
pub fn check(acl: &[Acl], perm: i32, ids: &[Id], path: &str) -> Result<(), KeeperError> {
    if allows(acl, perm, ids) {
        return Ok(());
    }
    Err(KeeperError::NoAuth {
        path: path.into(),
        perm: perms_text(perm),
        ids: ids.iter().map(Id::to_string).collect::<Vec<_>>().join(", "),
    })
}

/// The ACL to store for one a client wrote (ZooKeeper's `fixupACL`): duplicates dropped;
/// `auth` entries become one entry per authenticated identity of the connection (x509 and
/// digest; `InvalidACL` if it has none); every other entry must be valid in its scheme
/// (`world:anyone`, `x509:<name>`, `ip:<address>[/bits]`, `digest:<user>:<hash>`); an empty
/// list or unknown bits are refused.
pub fn fixup(acl: &[Acl], ids: &[Id], path: &str) -> Result<Vec<Acl>, KeeperError> {
    let invalid = |why: String| Err(KeeperError::InvalidAcl { what: format!("{path}: {why}") });
    if acl.is_empty() {
        return invalid("an ACL needs at least one entry".into());
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        if a.perms & !perms::ALL != 0 {
            return invalid(format!("{a}: permission bits {:#x} are not ZooKeeper's", a.perms));
        }
        match a.scheme.as_str() {
            "auth" => {
                let mut any = false;
                for i in ids.iter().filter(|i| i.scheme == "x509" || i.scheme == "digest") {
                    push(Acl { perms: a.perms, scheme: i.scheme.clone(), id: i.id.clone() });
                    any = true;
                }
                if !any {
                    return invalid(
                        "the auth scheme stands for the connection's authenticated identities, and it has \
                         none (no client certificate, no addauth)"
                            .into(),
                    );
                }
            }
            "world" if a.id == "anyone" => push(a.clone()),
            "world" => return invalid(format!("{a}: the world scheme's only id is anyone")),
            "x509" if !a.id.is_empty() => push(a.clone()),
            "ip" if valid_ip_id(&a.id) => push(a.clone()),
            "digest" if matches!(a.id.split_once(':'), Some((u, h)) if !u.is_empty() && !h.is_empty() && !h.contains(':')) => {
                push(a.clone())
            }
            "x509" | "ip" | "digest" => return invalid(format!("{a}: not a valid {} id", a.scheme)),
            other => {
                return invalid(format!("unknown scheme {other:?}: use world, x509, ip, digest or auth"));
            }
        }
    }
    Ok(out)
}

fn valid_ip_id(id: &str) -> bool {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    };
    match addr.parse::<IpAddr>() {
        Ok(ip) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            bits.is_none_or(|b| b.parse::<u32>().is_ok_and(|b| b <= max))
        }
        Err(_) => false,
    }
}

/// The ACL as a reader without ADMIN sees it: digest hashes are hidden (ZooKeeper 3.6+
/// answers getACL to READ-only readers with `user:x`).
pub fn redacted(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| match (a.scheme.as_str(), a.id.split_once(':')) {
            ("digest", Some((user, _))) => {
                Acl { perms: a.perms, scheme: a.scheme.clone(), id: format!("{user}:x") }
            }
            _ => a.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[(&str, &str)]) -> Vec<Id> {
        list.iter().map(|(s, i)| Id::new(s, i)).collect()
    }

    #[test]
    fn an_entry_with_the_bit_must_match_one_of_the_connections_ids() {
        let acl = vec![Acl::new(perms::ALL, "x509", "alice"), Acl::read_only()];
        let alice = ids(&[("ip", "127.0.0.1"), ("x509", "alice")]);
        let bob = ids(&[("ip", "127.0.0.1"), ("x509", "bob")]);
        assert!(allows(&acl, perms::WRITE, &alice));
        assert!(allows(&acl, perms::READ, &bob), "world may read");
        assert!(!allows(&acl, perms::WRITE, &bob));
        assert!(!allows(&acl, perms::DELETE, &[]));
        assert!(allows(&acl, perms::ADMIN, &[super_id()]), "a super user passes everything");
        assert!(allows(&[], perms::ADMIN, &bob), "an empty ACL lets everyone, as in ZooKeeper");
        let e = check(&acl, perms::WRITE, &bob, "/a").expect_err("bob cannot write");
        assert_eq!(e.code(), crate::ErrorCode::NoAuth);
        assert!(e.to_string().contains("x509:bob") && e.to_string().contains("/a"), "{e}");
    }

    #[test]
    fn ip_entries_match_addresses_and_networks() {
        let net = vec![Acl::new(perms::READ, "ip", "10.1.0.0/16")];
        assert!(allows(&net, perms::READ, &ids(&[("ip", "10.1.2.3")])));
        assert!(!allows(&net, perms::READ, &ids(&[("ip", "10.2.2.3")])));
        let one = vec![Acl::new(perms::READ, "ip", "::1")];
        assert!(allows(&one, perms::READ, &ids(&[("ip", "::1")])));
        assert!(!allows(&one, perms::READ, &ids(&[("ip", "127.0.0.1")])));
        let mapped = SuperUsers::default().connection_ids(None, "::ffff:127.0.0.1".parse().expect("ip"));
        assert_eq!(mapped, ids(&[("ip", "127.0.0.1")]), "a mapped IPv4 address is the IPv4 address");
    }

    #[test]
    fn super_users_come_from_the_certificate_or_the_super_digest() {
        let supers = SuperUsers { x509: vec!["broker-1".into()], digest: vec!["super:abc".into()] };
        let ip = "127.0.0.1".parse().expect("ip");
        assert!(supers.connection_ids(Some("broker-1"), ip).contains(&super_id()));
        let mut bob = supers.connection_ids(Some("bob"), ip);
        assert!(!bob.contains(&super_id()));
        supers.add(&mut bob, Id::new("digest", "bob:xyz"));
        assert!(!bob.contains(&super_id()));
        supers.add(&mut bob, Id::new("digest", "super:abc"));
        supers.add(&mut bob, Id::new("digest", "super:abc"));
        assert_eq!(bob.iter().filter(|i| **i == super_id()).count(), 1);
        assert_eq!(bob.len(), 5, "ip, x509, two digests and super: {bob:?}");
    }

    #[test]
    fn fixup_expands_auth_and_refuses_what_zookeeper_refuses() {
        let alice = ids(&[("ip", "127.0.0.1"), ("x509", "alice"), ("digest", "u:h")]);
        let got =
            fixup(&[Acl::new(perms::ALL, "auth", ""), Acl::read_only(), Acl::read_only()], &alice, "/n")
                .expect("valid");
        assert_eq!(got, vec![Acl::new(31, "x509", "alice"), Acl::new(31, "digest", "u:h"), Acl::read_only()]);
        let anonymous = ids(&[("ip", "127.0.0.1")]);
        let invalid = |acl: Vec<Acl>, who: &[Id]| {
            let e = fixup(&acl, who, "/n").expect_err("invalid");
            assert_eq!(e.code(), crate::ErrorCode::InvalidAcl, "{e}");
        };
        invalid(vec![Acl::new(31, "auth", "")], &anonymous);
        invalid(vec![], &alice);
        invalid(vec![Acl::new(31, "world", "everyone")], &alice);
        invalid(vec![Acl::new(31, "ip", "not-an-address")], &alice);
        invalid(vec![Acl::new(31, "ip", "10.0.0.0/33")], &alice);
        invalid(vec![Acl::new(31, "digest", "nohash")], &alice);
        invalid(vec![Acl::new(31, "sasl", "x")], &alice);
        invalid(vec![Acl::new(64, "world", "anyone")], &alice);
        assert!(fixup(&[Acl::new(1, "ip", "10.0.0.0/8")], &anonymous, "/n").is_ok());
    }

    #[test]
    fn zkclis_acl_text_reads_and_writes_back() {
        let acl = parse_acl("world:anyone:r, x509:alice:cdrwa,digest:u:abc=:rw").expect("parse");
        assert_eq!(
            acl,
            vec![
                Acl::read_only(),
                Acl::new(31, "x509", "alice"),
                Acl::new(perms::READ | perms::WRITE, "digest", "u:abc=")
            ]
        );
        assert_eq!(
            acl.iter().map(Acl::to_string).collect::<Vec<_>>(),
            ["world:anyone:r", "x509:alice:cdrwa", "digest:u:abc=:rw"]
        );
        assert!(parse_acl("world:anyone:rx").is_err());
        assert!(parse_acl("worldanyone").is_err());
        assert!(parse_acl("").is_err());
        assert_eq!(redacted(&acl)[2].id, "u:x");
    }
}
