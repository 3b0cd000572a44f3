//! `RoleWatcher`: tells the database what the Raft member's metrics say of its role —
//! whether it leads (then it decides session expiry) and whether it can commit writes (else
//! its clients hear they are read-only) — and keeps the role gauges. The rule is
//! [`sluice_ensemble::role_of`]; this shell asks it on every metrics change and on every
//! heartbeat tick (a leader cut off from its majority learns it only from time passing), and
//! tells the database only when the answer changes.

use std::time::Duration;

use actix::prelude::*;
use sluice_ensemble::{role_of, Metrics};
use tokio::sync::watch;

use super::database::Role;

/// The actor.
pub struct RoleWatcher {
    metrics: watch::Receiver<Metrics>,
    me: u64,
    lost_after_ms: u64,
    heartbeat: Duration,
    db: Recipient<Role>,
    /// The role last told: (leading, quorum).
    told: Option<(bool, bool)>,
    /// Term, leader, quorum.
    gauges: [metrics::Gauge; 3],
}

impl std::fmt::Debug for RoleWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleWatcher").field("me", &self.me).field("told", &self.told).finish_non_exhaustive()
    }
}

impl RoleWatcher {
    /// Watches member `me`'s `metrics` for `db`; a leader without acknowledgements from a
    /// majority for `lost_after_ms` has no quorum.
    pub fn new(
        metrics: watch::Receiver<Metrics>,
        me: u64,
        lost_after_ms: u64,
        heartbeat: Duration,
        db: Recipient<Role>,
    ) -> Self {
        metrics::describe_gauge!(
            "sluice_keeper_raft_term",
            "The Raft term (ZooKeeper's epoch) this member is in."
        );
        metrics::describe_gauge!(
            "sluice_keeper_raft_leader",
            "The member this one follows (or is), 0 for none."
        );
        metrics::describe_gauge!(
            "sluice_keeper_quorum",
            "1 while this member can commit writes, 0 without a quorum."
        );
        let gauges = [
            metrics::gauge!("sluice_keeper_raft_term"),
            metrics::gauge!("sluice_keeper_raft_leader"),
            metrics::gauge!("sluice_keeper_quorum"),
        ];
        RoleWatcher { metrics, me, lost_after_ms, heartbeat, db, told: None, gauges }
    }

    fn check(&mut self) {
        let role = {
            let m = self.metrics.borrow();
            self.gauges[0].set(m.current_term as f64);
            self.gauges[1].set(m.current_leader.unwrap_or(0) as f64);
            role_of(&m, self.me, self.lost_after_ms)
        };
        self.gauges[2].set(if role.1 { 1.0 } else { 0.0 });
        if self.told != Some(role) {
            self.told = Some(role);
            self.db.do_send(Role { leading: role.0, quorum: role.1 });
        }
    }
}

/// The metrics changed.
struct Changed;

impl Actor for RoleWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let changes = futures_util::stream::unfold(self.metrics.clone(), |mut rx| async move {
            rx.changed().await.ok().map(|()| (Changed, rx))
        });
        ctx.add_stream(changes);
        ctx.run_interval(self.heartbeat, |this, _| this.check());
        self.check();
    }
}

impl StreamHandler<Changed> for RoleWatcher {
    fn handle(&mut self, _: Changed, _: &mut Context<Self>) {
        self.check();
    }

    // The member stopped: so does its watcher.
    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
