//! ZooKeeper's four-letter words on the door's ports, in ZooKeeper's output formats so that
//! monitoring scripts written for ZooKeeper parse them. Only the words in
//! `4lw.commands.whitelist` are answered (ZooKeeper's default: `srvr`).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use sluice_actors::keeper::GetStatus;
use sluice_proto::keeper::ServerStatus;

use super::Shared;

/// The report for `word` (a known four-letter word).
pub(super) async fn answer(shared: &Shared, word: &str) -> String {
    if !shared.settings.allows(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let status = match shared.db.send(GetStatus).await {
        Ok(s) => s,
        Err(_) => return "This ZooKeeper instance is not currently serving requests\n".into(),
    };
    match word {
        "ruok" => "imok".into(),
        "srvr" => server(shared, &status, false),
        "stat" => server(shared, &status, true),
        "mntr" => monitor(shared, &status),
        "conf" => shared.conf.iter().map(|(k, v)| format!("{k}={v}\n")).collect(),
        "cons" => format!("{}\n", connections(shared, true)),
        "wchs" => format!(
            "{} connections watching {} paths\nTotal watches:{}\n",
            shared.conns().len(),
            status.watches,
            status.watches
        ),
        "envi" => environment(),
        "isro" => if read_only(&status) { "ro" } else { "rw" }.into(),
        other => format!("{other} is not served by this server (a Sluice keeper)\n"),
    }
}

fn read_only(s: &ServerStatus) -> bool {
    s.ensemble.as_ref().is_some_and(|e| e.leader.is_none())
}

fn mode(s: &ServerStatus) -> String {
    if read_only(s) {
        "read-only".into()
    } else {
        s.mode.clone()
    }
}

/// `srvr` (and `stat`, which adds the clients).
fn server(shared: &Shared, s: &ServerStatus, clients: bool) -> String {
    let mut out = format!("Zookeeper version: {} (Sluice keeper)\n", s.version);
    if clients {
        out.push_str("Clients:\n");
        out.push_str(&connections(shared, false));
        out.push('\n');
    }
    let (min, avg, max) = s.latency_ms;
    let _ = write!(
        out,
        "Latency min/avg/max: {}/{avg:.4}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\n\
         Zxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        min.round() as u64,
        max.round() as u64,
        shared.totals.received.load(Ordering::Relaxed),
        shared.totals.sent.load(Ordering::Relaxed),
        shared.conns().len(),
        s.outstanding,
        s.last_zxid,
        mode(s),
        s.znodes,
    );
    out
}

/// One line per connection, as `cons` (`full`) or `stat` print them.
fn connections(shared: &Shared, full: bool) -> String {
    let mut out = String::new();
    for c in shared.conns().values() {
        let received = c.counters.received.load(Ordering::Relaxed);
        let sent = c.counters.sent.load(Ordering::Relaxed);
        let _ = write!(out, " /{}[1](queued=0,recved={received},sent={sent}", c.remote);
        if full {
            let est =
                c.established.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
            let _ = write!(out, ",sid=0x{:x},est={est},to={}", c.session, c.timeout_ms);
        }
        out.push_str(")\n");
    }
    out
}

/// `mntr`: one `key<TAB>value` line per metric, ZooKeeper's names.
fn monitor(shared: &Shared, s: &ServerStatus) -> String {
    let (min, avg, max) = s.latency_ms;
    let mut lines = vec![
        ("zk_version", format!("{} (Sluice keeper)", s.version)),
        ("zk_server_state", mode(s)),
        ("zk_avg_latency", format!("{avg:.4}")),
        ("zk_max_latency", format!("{}", max.round() as u64)),
        ("zk_min_latency", format!("{}", min.round() as u64)),
        ("zk_packets_received", shared.totals.received.load(Ordering::Relaxed).to_string()),
        ("zk_packets_sent", shared.totals.sent.load(Ordering::Relaxed).to_string()),
        ("zk_num_alive_connections", shared.conns().len().to_string()),
        ("zk_outstanding_requests", s.outstanding.to_string()),
        ("zk_znode_count", s.znodes.to_string()),
        ("zk_watch_count", s.watches.to_string()),
        ("zk_global_sessions", s.sessions.to_string()),
    ];
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        lines.push(("zk_open_file_descriptor_count", fds.count().to_string()));
    }
    if let Some(e) = &s.ensemble {
        if s.mode == "leader" {
            lines.push(("zk_followers", (e.members.len().saturating_sub(1)).to_string()));
        }
    }
    lines.into_iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

/// `envi`.
fn environment() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let dir = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={} (Sluice keeper)\nhost.name={}\nos.name={}\nos.arch={}\nuser.dir={dir}\n",
        sluice_net::SOFTWARE,
        host.trim(),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}
