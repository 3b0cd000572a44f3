//! Finding out fast that the leader's process is gone.
//!
//! ZooKeeper's followers learn it from their TCP quorum connection closing. QUIC over UDP
//! hears nothing from a killed process, so Raft alone waits out the dead leader's lease
//! (openraft: the maximum election timeout, 1.5 t) and then an election timeout: 2.5-3 t.
//! So each member also listens on TCP at its peer address ([`listen`]), and a follower holds
//! a connection to its leader's ([`follow_leader`]). When that connection ends — the kernel
//! closes a dead process's sockets — while the member still follows that leader, it stands
//! for election at once. Every surviving follower does, so none of them holds the dead
//! leader's lease against the others; then, by rank, each survivor that still sees no leader
//! stands once more, one term above the one before it, which the others grant unless its log
//! is behind theirs — no split vote to wait out. Should all that fail (a survivor that saw no
//! close), the randomized election timeouts settle it as before.
//!
//! What a close cannot show (a leader cut off by the network, or its host gone) is still
//! found by Raft's own timeouts. The link carries no data but one byte from the listener,
//! which arms it: a connection the listener refuses (over [`MAX_HELD`]) or never answers
//! ends before it is armed and starts no election.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Raft, ServerState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::KeeperRaft;

/// Connections a member's liveness listener holds at once (the other members need one each;
/// the rest is room for restarts). Past it, new ones are closed before they are armed.
pub const MAX_HELD: usize = 64;

/// How long a follower waits to connect to (and be armed by) its leader's listener, and
/// between tries when it cannot.
const CONNECT: Duration = Duration::from_secs(1);

/// How long after standing the lowest-id survivor stands again, and the next ones after it
/// (see [`follow_leader`]): time for the others' elections to have begun and been answered.
const RESTAND: Duration = Duration::from_millis(30);

/// Listens on TCP at `addr` (the member's peer address; TCP and UDP ports do not collide)
/// and holds each connection until its peer closes it. Returns the listening task, to be
/// aborted at shutdown; `None`, with a warning, when the port cannot be had (the ensemble
/// then finds dead leaders by Raft's timeouts alone).
pub async fn listen(addr: SocketAddr) -> Option<tokio::task::JoinHandle<()>> {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, error = %e, "cannot listen on TCP at the peer address: a dead leader will be found by \
                the election timeout alone (free that TCP port to have it found at once)");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        // The held links live in the set: aborting this task closes them all, so a member
        // that stops gracefully is seen to go at once too.
        let mut held = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                Some(_) = held.join_next() => continue,
            };
            let mut stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: do not spin on it.
                    debug!(error = %e, "liveness listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if held.len() >= MAX_HELD {
                // Closed unarmed: the peer starts no election over it.
                continue;
            }
            held.spawn(async move {
                if stream.write_all(&[1]).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 64];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    }))
}

/// The leader this member follows, if it is a follower that knows one other than itself.
fn followed(metrics: &mut tokio::sync::watch::Receiver<crate::Metrics>, me: u64) -> Option<u64> {
    let m = metrics.borrow_and_update();
    (m.state == ServerState::Follower).then_some(m.current_leader).flatten().filter(|&l| l != me)
}

/// Holds a connection to the leader's liveness listener while this member follows it, and
/// stands for election when the connection ends under it. Runs until the Raft node stops.
pub async fn follow_leader(raft: Raft<KeeperRaft>, me: u64, members: Arc<BTreeMap<u64, String>>) {
    let mut metrics = raft.metrics();
    loop {
        let Some(leader) = followed(&mut metrics, me) else {
            if metrics.changed().await.is_err() {
                return;
            }
            continue;
        };
        let Some(addr) = members.get(&leader) else { return };
        let Some(mut link) = arm(addr).await else {
            // Not listening (yet, or at all): try again later, or for the next leader.
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(CONNECT) => {}
            }
            continue;
        };
        debug!(leader, %addr, "holding a liveness link to the leader");
        let mut buf = [0u8; 64];
        let closed = loop {
            tokio::select! {
                read = link.read(&mut buf) => match read {
                    Ok(n) if n > 0 => {}
                    _ => break true,
                },
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if followed(&mut metrics, me) != Some(leader) {
                        break false;
                    }
                }
            }
        };
        if closed && followed(&mut metrics, me) == Some(leader) {
            info!(
                leader,
                "the leader's liveness link closed (its process is gone): standing for election now"
            );
            if raft.trigger().elect().await.is_err() {
                return;
            }
            // Every survivor has just voted for itself in the next term, which frees its vote
            // from the dead leader's lease: now they would split the vote. See `restand`.
            let (after, times) = restand(&members, leader, me);
            tokio::time::sleep(after).await;
            for _ in 0..times {
                if raft.metrics().borrow().state != ServerState::Candidate {
                    break;
                }
                if raft.trigger().elect().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// After every survivor of `dead` has stood for election once: how long `me` waits, and how
/// many more times it then stands while it still sees no leader. By rank among the survivors
/// (lowest id first), RESTAND apart, each one term above every lower rank's last, which the
/// others grant — unless its log is behind theirs, and then the next rank's turn comes.
fn restand(members: &BTreeMap<u64, String>, dead: u64, me: u64) -> (Duration, u32) {
    let rank = members.keys().filter(|&&id| id != dead).position(|&id| id == me).unwrap_or(0) as u32;
    (RESTAND * (rank + 1), rank + 1)
}

/// A connection to `addr`'s liveness listener, once the listener has armed it.
async fn arm(addr: &str) -> Option<TcpStream> {
    let armed = async {
        let mut link = TcpStream::connect(addr).await.ok()?;
        let mut first = [0u8; 1];
        (link.read(&mut first).await.ok()? == 1).then_some(link)
    };
    tokio::time::timeout(CONNECT, armed).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[u64]) -> BTreeMap<u64, String> {
        ids.iter().map(|&id| (id, format!("127.0.0.1:{}", 2888 + id))).collect()
    }

    #[test]
    fn survivors_stand_again_in_id_order_each_one_term_above_the_last() {
        let three = members(&[1, 2, 3]);
        assert_eq!(restand(&three, 1, 2), (RESTAND, 1));
        assert_eq!(restand(&three, 1, 3), (RESTAND * 2, 2));
        // The dead leader's id does not take a rank.
        assert_eq!(restand(&three, 2, 1), (RESTAND, 1));
        assert_eq!(restand(&three, 2, 3), (RESTAND * 2, 2));
        let five = members(&[1, 2, 3, 4, 5]);
        let plans: Vec<(Duration, u32)> = [1, 2, 4, 5].iter().map(|&me| restand(&five, 3, me)).collect();
        // Later ranks stand later and end in higher terms than every rank before them.
        assert!(plans.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{plans:?}");
        assert_eq!(plans[0], (RESTAND, 1));
    }
}
