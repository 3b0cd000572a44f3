//! Connect strings as ZooKeeper's: `host:port[,host:port...][/chroot]`.

use sluice_keeper_core::{path, KeeperError};

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// Servers, tried in turn.
    pub hosts: Vec<String>,
    /// The chroot (`None` for the whole tree).
    pub chroot: Option<String>,
}

impl ConnectString {
    /// Parses `k1:2181,k2:2181/cluster-a`.
    pub fn parse(s: &str) -> Result<Self, KeeperError> {
        let bad = |why: &str| KeeperError::BadArguments { what: format!("connect string {s:?}: {why}") };
        let (hosts, chroot) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let hosts: Vec<String> =
            hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_string).collect();
        if hosts.is_empty() {
            return Err(bad("no host (expected host:port[,host:port...][/chroot])"));
        }
        for h in &hosts {
            let port = h.rsplit_once(':').map(|(_, p)| p).ok_or_else(|| bad(&format!("{h} has no port")))?;
            port.parse::<u16>().map_err(|_| bad(&format!("{h}: port {port:?} is not a number")))?;
        }
        let chroot = match chroot {
            None | Some("/") => None,
            Some(c) => {
                path::validate(c).map_err(|e| bad(&format!("chroot: {e}")))?;
                Some(c.to_string())
            }
        };
        Ok(ConnectString { hosts, chroot })
    }

    /// The server-side path of a client path.
    pub fn to_server(&self, client_path: &str) -> String {
        match &self.chroot {
            None => client_path.to_string(),
            Some(c) if client_path == "/" => c.clone(),
            Some(c) => format!("{c}{client_path}"),
        }
    }

    /// The client path of a server-side path (`None` if it lies outside the chroot).
    pub fn to_client(&self, server_path: &str) -> Option<String> {
        match &self.chroot {
            None => Some(server_path.to_string()),
            Some(c) if server_path == c => Some("/".into()),
            Some(c) => {
                server_path.strip_prefix(c.as_str()).filter(|r| r.starts_with('/')).map(str::to_string)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_chroot_parse_and_paths_map_both_ways() {
        let c = ConnectString::parse("k1:2181, k2:2182/cluster-a").expect("parse");
        assert_eq!(c.hosts, vec!["k1:2181", "k2:2182"]);
        assert_eq!(c.chroot.as_deref(), Some("/cluster-a"));
        assert_eq!(c.to_server("/"), "/cluster-a");
        assert_eq!(c.to_server("/brokers/ids"), "/cluster-a/brokers/ids");
        assert_eq!(c.to_client("/cluster-a/brokers"), Some("/brokers".into()));
        assert_eq!(c.to_client("/cluster-a"), Some("/".into()));
        assert_eq!(c.to_client("/cluster-ab/x"), None);
        assert_eq!(ConnectString::parse("h:1/").expect("root chroot").chroot, None);
    }

    #[test]
    fn bad_connect_strings_say_why() {
        for (s, why) in [("", "no host"), ("h", "no port"), ("h:x", "not a number"), ("h:1/a/", "chroot")] {
            let e = ConnectString::parse(s).expect_err(s).to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
    }
}
