//! A nemesis on network namespaces: test hosts that are separate machines as far as the
//! network goes, and the faults between them that SIGKILL cannot show.
//!
//! A [`Lan`] is one namespace per host, each with one address (`10.99.0.N/24` on `eth0`),
//! all plugged into a bridge that lives in a namespace of its own (the hub). Nothing touches
//! the machine's own namespace: traffic stays between these namespaces. The faults are
//! nftables rules on the hub's bridge, so a cut drops packets silently in the middle of the
//! wire, as a real partition does (the sender sees no error):
//! - [`Lan::cut`]: no packet between two groups of hosts, either way (an isolated host, a
//!   majority/minority split, or a bridge topology from several cuts);
//! - [`Lan::lose`]: a share of one host's packets lost, at random;
//! - [`Lan::heal`]: every rule gone.
//!
//! Delay, duplication and reordering (`tc netem`) need the kernel's `sch_netem`, which this
//! machine's kernel does not have; pauses and kills are the processes' own (SIGSTOP, SIGKILL).
//!
//! Processes run inside a host with `ip netns exec` ([`crate::sluice_command`]); test code
//! runs inside one on a thread of its own ([`Lan::run_in`]). Every namespace is deleted when
//! the `Lan` is dropped, and ones left by a test process that died are deleted by the next.
//! Needs root, `ip` (iproute2) and `nft` (nftables); [`Lan::new`] says which is missing.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Namespaces this module makes start with this (then the test process's pid).
const PREFIX: &str = "slnm-";

/// One host of a [`Lan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The test's name for it (`keeper`, `b1`, `client`).
    pub label: String,
    /// Its network namespace.
    pub netns: String,
    /// Its address on the bridge.
    pub ip: Ipv4Addr,
}

/// Hosts on one bridge, each in its own network namespace; see the module docs.
#[derive(Debug)]
pub struct Lan {
    hub: String,
    hosts: Vec<Host>,
}

/// Runs `args` (an `ip` or `nft` command line), with `input` on stdin; its stderr on failure.
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| format!("{program} stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Deletes namespaces left by test processes that no longer run.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name], None);
        }
    }
}

impl Lan {
    /// A bridge and one host per label (`10.99.0.1` for the first, and so on). An error
    /// names what this machine lacks.
    pub fn new(labels: &[&str]) -> Result<Lan, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let install = "the nemesis needs root and the commands ip and nft: \
                       apt-get install -y iproute2 nftables, and run the tests as root";
        if !nix::unistd::geteuid().is_root() {
            return Err(format!("not root; {install}"));
        }
        for program in ["ip", "nft"] {
            if Command::new(program).arg("-V").output().is_err() {
                return Err(format!("{program} is missing; {install}"));
            }
        }
        remove_stale();
        let base = format!("{PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut lan = Lan { hub: format!("{base}-hub"), hosts: Vec::new() };
        run("ip", &["netns", "add", &lan.hub], None)?;
        let hub = lan.hub.clone();
        let ns = |ns: &str, args: &[&str]| {
            let mut all = vec!["-n", ns];
            all.extend_from_slice(args);
            run("ip", &all, None)
        };
        ns(&hub, &["link", "add", "br0", "type", "bridge"])?;
        ns(&hub, &["link", "set", "br0", "up"])?;
        run(
            "ip",
            &["netns", "exec", &hub, "nft", "-f", "-"],
            Some("table bridge nemesis {\n  chain cut {\n    type filter hook forward priority 0;\n  }\n}\n"),
        )?;
        for (i, label) in labels.iter().enumerate() {
            let host = Host {
                label: label.to_string(),
                netns: format!("{base}-{label}"),
                ip: Ipv4Addr::new(10, 99, 0, i as u8 + 1),
            };
            run("ip", &["netns", "add", &host.netns], None)?;
            lan.hosts.push(host.clone());
            let port = format!("p{i}");
            run(
                "ip",
                &[
                    "link",
                    "add",
                    "eth0",
                    "netns",
                    &host.netns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &port,
                    "netns",
                    &hub,
                ],
                None,
            )?;
            ns(&hub, &["link", "set", &port, "master", "br0"])?;
            ns(&hub, &["link", "set", &port, "up"])?;
            ns(&host.netns, &["addr", "add", &format!("{}/24", host.ip), "dev", "eth0"])?;
            ns(&host.netns, &["link", "set", "eth0", "up"])?;
            ns(&host.netns, &["link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }

    /// The host called `label`.
    pub fn host(&self, label: &str) -> &Host {
        self.hosts.iter().find(|h| h.label == label).unwrap_or_else(|| panic!("no host {label} on this lan"))
    }

    /// Every host.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    fn rules(&self, rules: &[String]) {
        let text: String = rules.iter().map(|r| format!("add rule bridge nemesis cut {r}\n")).collect();
        if let Err(e) = run("ip", &["netns", "exec", &self.hub, "nft", "-f", "-"], Some(&text)) {
            panic!("nemesis: {e}");
        }
    }

    /// From now on no packet passes between a host in `a` and one in `b`, either way.
    pub fn cut(&self, a: &[&str], b: &[&str]) {
        let mut rules = Vec::new();
        for x in a {
            for y in b {
                let (x, y) = (self.host(x).ip, self.host(y).ip);
                rules.push(format!("ip saddr {x} ip daddr {y} drop"));
                rules.push(format!("ip saddr {y} ip daddr {x} drop"));
            }
        }
        self.rules(&rules);
    }

    /// From now on `percent` of the packets to and from `host` are lost, at random.
    pub fn lose(&self, host: &str, percent: u32) {
        let ip = self.host(host).ip;
        self.rules(&[
            format!("ip saddr {ip} numgen random mod 100 < {percent} drop"),
            format!("ip daddr {ip} numgen random mod 100 < {percent} drop"),
        ]);
    }

    /// Every cut and loss undone.
    pub fn heal(&self) {
        if let Err(e) = run(
            "ip",
            &["netns", "exec", &self.hub, "nft", "flush", "chain", "bridge", "nemesis", "cut"],
            None,
        ) {
            panic!("nemesis: {e}");
        }
    }

    /// Runs `f`'s future to completion on a thread inside `host`'s namespace (a
    /// single-threaded tokio runtime of its own): every socket it opens is that host's.
    pub fn run_in<F, Fut, T>(&self, host: &str, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/var/run/netns/{}", self.host(host).netns);
        let thread = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // Moves only this thread.
            if let Err(e) = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET) {
                panic!("setns {path}: {e}");
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(f())
        });
        match thread.join() {
            Ok(t) => t,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = run("ip", &["netns", "del", &h.netns], None);
        }
        let _ = run("ip", &["netns", "del", &self.hub], None);
    }
}

/// A small seeded random source (xorshift64*): a nemesis schedule is a function of its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The source for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }
}

/// The seeds a scenario runs: `NEMESIS_SEED=S` replays one, `NEMESIS_SEEDS=N` runs 1..=N,
/// and by default `default` (what CI runs).
pub fn seeds(default: &[u64]) -> Vec<u64> {
    if let Some(s) = std::env::var("NEMESIS_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    match std::env::var("NEMESIS_SEEDS").ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(n) => (1..=n).collect(),
        None => default.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule() {
        let draw = |seed| {
            let mut r = Rng::new(seed);
            (0..8).map(|_| r.range(0, 1000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(9).iter().all(|x| *x < 1000));
    }
}
