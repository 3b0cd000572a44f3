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
//! [`Lan::weather`] slows one host's link instead: its packets delayed, with jitter that lets
//! later packets overtake earlier ones (reordering), and a share of them delivered twice.
//! `tc netem` would do it, but this machine's kernel has no `sch_netem`; so the hub passes
//! the bridged packets to iptables (`bridge-nf-call-iptables`), an NFQUEUE rule hands that
//! host's packets to a thread of the test process, which lets each go after its delay, and
//! `TEE` rules send copies. [`Lan::calm`] ends it. Pauses and kills are the processes' own
//! (SIGSTOP, SIGKILL).
//!
//! Processes run inside a host with `ip netns exec` ([`crate::sluice_command`]); test code
//! runs inside one on a thread of its own ([`Lan::run_in`]). Every namespace is deleted when
//! the `Lan` is dropped, and ones left by a test process that died are deleted by the next.
//! Needs root, `ip` (iproute2) and `nft` (nftables), and `iptables` for the weather;
//! [`Lan::new`] and [`Lan::weather`] say which is missing.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use sluice_checker::Rng;

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
    /// Per host address, the delay its packets get and the jitter on top.
    delays: Delays,
    /// The thread releasing delayed packets, once there is one.
    queue: Mutex<Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>>,
}

type Delays = Arc<Mutex<HashMap<Ipv4Addr, (Duration, Duration)>>>;

/// The hub's own address, from which duplicated packets are sent (the `TEE` target routes).
const HUB_IP: &str = "10.99.0.254";

/// A host's link conditions ([`Lan::weather`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Weather {
    /// Every packet to or from the host waits this long...
    pub delay: Duration,
    /// ...plus up to this much more, at random: packets overtake each other.
    pub jitter: Duration,
    /// This share of its packets, in percent, arrives twice.
    pub duplicate: u32,
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
        let mut lan = Lan {
            hub: format!("{base}-hub"),
            hosts: Vec::new(),
            delays: Delays::default(),
            queue: Mutex::new(None),
        };
        run("ip", &["netns", "add", &lan.hub], None)?;
        let hub = lan.hub.clone();
        let ns = |ns: &str, args: &[&str]| {
            let mut all = vec!["-n", ns];
            all.extend_from_slice(args);
            run("ip", &all, None)
        };
        ns(&hub, &["link", "add", "br0", "type", "bridge"])?;
        ns(&hub, &["link", "set", "br0", "up"])?;
        ns(&hub, &["addr", "add", &format!("{HUB_IP}/24"), "dev", "br0"])?;
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

    /// Runs `program args` inside the hub's namespace, with `input` on stdin.
    fn in_hub(&self, program: &str, args: &[&str], input: Option<&str>) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.hub, program];
        all.extend_from_slice(args);
        run("ip", &all, input)
    }

    fn rules(&self, rules: &[String]) {
        let text: String = rules.iter().map(|r| format!("add rule bridge nemesis cut {r}\n")).collect();
        if let Err(e) = self.in_hub("nft", &["-f", "-"], Some(&text)) {
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
        if let Err(e) = self.in_hub("nft", &["flush", "chain", "bridge", "nemesis", "cut"], None) {
            panic!("nemesis: {e}");
        }
    }

    fn iptables(&self, args: &[&str]) {
        let mut all = vec!["-w"];
        all.extend_from_slice(args);
        if let Err(e) = self.in_hub("iptables", &all, None) {
            panic!("nemesis weather: {e}");
        }
    }

    /// From now on `host`'s packets, both ways, get `weather` (on top of any earlier
    /// weather there). Panics naming what is missing (`iptables`, the kernel's
    /// `br_netfilter` or NFQUEUE).
    pub fn weather(&self, host: &str, weather: Weather) {
        if Command::new("iptables").arg("-V").output().is_err() {
            panic!("the nemesis weather needs iptables: apt-get install -y iptables");
        }
        if let Err(e) = self.in_hub("sysctl", &["-q", "-w", "net.bridge.bridge-nf-call-iptables=1"], None) {
            panic!(
                "the nemesis weather needs the kernel's br_netfilter (bridged packets through iptables): {e}"
            );
        }
        let ip = self.host(host).ip.to_string();
        if weather.delay > Duration::ZERO || weather.jitter > Duration::ZERO {
            self.start_queue();
            if let Ok(mut d) = self.delays.lock() {
                d.insert(self.host(host).ip, (weather.delay, weather.jitter));
            }
            for way in ["-s", "-d"] {
                self.iptables(&[
                    "-A",
                    "FORWARD",
                    way,
                    &ip,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    "0",
                    "--queue-bypass",
                ]);
            }
        }
        if weather.duplicate > 0 {
            let p = format!("{:.3}", f64::from(weather.duplicate.min(100)) / 100.0);
            for other in self.hosts.iter().filter(|h| h.label != host).map(|h| h.ip.to_string()) {
                for (from, to) in [(&ip, &other), (&other, &ip)] {
                    self.iptables(&[
                        "-t",
                        "mangle",
                        "-A",
                        "FORWARD",
                        "-s",
                        from,
                        "-d",
                        to,
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p,
                        "-j",
                        "TEE",
                        "--gateway",
                        to,
                    ]);
                }
            }
        }
    }

    /// Every host's weather gone (packets held back still go when due).
    pub fn calm(&self) {
        self.iptables(&["-F", "FORWARD"]);
        self.iptables(&["-t", "mangle", "-F", "FORWARD"]);
        if let Ok(mut d) = self.delays.lock() {
            d.clear();
        }
    }

    /// Starts the thread that holds back and releases queued packets, in the hub.
    fn start_queue(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.is_some() {
            return;
        }
        let path = format!("/var/run/netns/{}", self.hub);
        let (delays, stop) = (self.delays.clone(), Arc::new(AtomicBool::new(false)));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = (|| {
                let ns = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("setns: {e}"))?;
                let mut q = nfq::Queue::open().map_err(|e| format!("NFQUEUE: {e}"))?;
                q.bind(0).map_err(|e| format!("NFQUEUE bind: {e}"))?;
                // The addresses are all it reads; a full queue lets packets through.
                let _ = q.set_copy_range(0, 64);
                let _ = q.set_queue_max_len(0, 16_384);
                let _ = q.set_fail_open(0, true);
                q.set_nonblocking(true);
                Ok::<_, String>(q)
            })();
            let mut q = match started {
                Ok(q) => {
                    let _ = ready_tx.send(Ok(()));
                    q
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            release_delayed(&mut q, &delays, &stopping);
            let _ = q.unbind(0);
        });
        match ready.recv() {
            Ok(Ok(())) => *queue = Some((thread, stop)),
            Ok(Err(e)) => panic!("the nemesis weather needs the kernel's NFQUEUE: {e}"),
            Err(_) => panic!("the nemesis weather's queue thread died"),
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

/// Holds each queued packet for its hosts' delay plus jitter, then lets it go; until `stop`,
/// then lets everything go.
fn release_delayed(q: &mut nfq::Queue, delays: &Delays, stop: &AtomicBool) {
    let mut rng = Rng::new(0x5EED);
    let mut held: BTreeMap<(Instant, u64), nfq::Message> = BTreeMap::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Until nothing is queued (WouldBlock) or the queue fails; then release what is due.
        while let Ok(mut msg) = q.recv() {
            let payload = msg.get_payload();
            let addr = |at: usize| payload.get(at..at + 4).map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            let wait = {
                let d = delays.lock().unwrap_or_else(|p| p.into_inner());
                [addr(12), addr(16)]
                    .into_iter()
                    .flatten()
                    .filter_map(|a| d.get(&a))
                    .map(|(delay, jitter)| {
                        *delay + Duration::from_micros(rng.range(0, jitter.as_micros() as u64 + 1))
                    })
                    .max()
                    .unwrap_or_default()
            };
            seq += 1;
            if wait.is_zero() {
                msg.set_verdict(nfq::Verdict::Accept);
                let _ = q.verdict(msg);
            } else {
                held.insert((Instant::now() + wait, seq), msg);
            }
        }
        let now = Instant::now();
        while held.first_key_value().is_some_and(|((due, _), _)| *due <= now) {
            if let Some((_, mut msg)) = held.pop_first() {
                msg.set_verdict(nfq::Verdict::Accept);
                let _ = q.verdict(msg);
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    for (_, mut msg) in held {
        msg.set_verdict(nfq::Verdict::Accept);
        let _ = q.verdict(msg);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Some((thread, stop)) = self.queue.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
        for h in &self.hosts {
            let _ = run("ip", &["netns", "del", &h.netns], None);
        }
        let _ = run("ip", &["netns", "del", &self.hub], None);
    }
}

/// The weather a seed's run gets on one of `hosts` throughout: none, a slow link with jitter
/// (packets reordered), duplicated packets, or both. Drawn from a stream of its own, so the
/// seed's other faults are the same as without it.
pub fn weather_for(seed: u64, hosts: &[&'static str]) -> Option<(&'static str, Weather)> {
    let mut rng = Rng::new(seed ^ 0x0057_4541_5448_4552);
    let host = *rng.pick(hosts);
    let delay = Duration::from_millis(rng.range(5, 40));
    let jitter = Duration::from_millis(rng.range(5, 40));
    let duplicate = rng.range(5, 25) as u32;
    match rng.range(0, 4) {
        0 => None,
        1 => Some((host, Weather { delay, jitter, duplicate: 0 })),
        2 => Some((host, Weather { duplicate, ..Weather::default() })),
        _ => Some((host, Weather { delay, jitter, duplicate })),
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

#[cfg(test)]
mod weather_tests {
    use super::*;

    #[test]
    fn seeds_draw_every_kind_of_weather_and_a_seed_always_the_same() {
        let hosts = ["k1", "k2", "k3"];
        let kinds: std::collections::BTreeSet<(bool, bool)> = (1..=40)
            .filter_map(|seed| weather_for(seed, &hosts))
            .map(|(_, w)| (w.delay.is_zero(), w.duplicate > 0))
            .collect();
        assert_eq!(kinds.len(), 3, "delay, duplication and both: {kinds:?}");
        assert!((1..=40).any(|seed| weather_for(seed, &hosts).is_none()), "some seeds run calm");
        for seed in [1, 2, 5, 9, 14] {
            assert_eq!(weather_for(seed, &hosts), weather_for(seed, &hosts));
            println!("seed {seed}: {:?}", weather_for(seed, &hosts));
        }
    }
}
