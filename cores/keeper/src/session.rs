//! Sessions: negotiated timeouts, liveness, expiry.
//!
//! The client proposes a timeout; the server clamps it to
//! [`min_timeout_ms`, `max_timeout_ms`] (ZooKeeper's defaults: 2 and 20 ticks). Every
//! request or ping from the client [`touch`](SessionTracker::touch)es its session; a session
//! not touched for its timeout expires at the next [`tick`](SessionTracker::tick). Expiring a
//! session here only decides it: the caller then applies `Op::CloseSession`, which deletes
//! the session's ephemeral nodes in one transaction.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::KeeperError;

/// A session id: the creating server's id in the top byte, a counter below.
pub type SessionId = u64;

/// Session limits, from zoo.cfg's `tickTime`, `minSessionTimeout`, `maxSessionTimeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// `tickTime`, ms.
    pub tick_ms: u32,
    /// `minSessionTimeout`, ms (default 2 × tickTime).
    pub min_timeout_ms: u32,
    /// `maxSessionTimeout`, ms (default 20 × tickTime).
    pub max_timeout_ms: u32,
}

impl SessionConfig {
    /// ZooKeeper's defaults for a given `tickTime`.
    pub fn from_tick(tick_ms: u32) -> Self {
        SessionConfig {
            tick_ms,
            min_timeout_ms: tick_ms.saturating_mul(2),
            max_timeout_ms: tick_ms.saturating_mul(20),
        }
    }

    /// The timeout a client asking for `requested_ms` gets.
    pub fn clamp(&self, requested_ms: u32) -> u32 {
        requested_ms.clamp(self.min_timeout_ms, self.max_timeout_ms.max(self.min_timeout_ms))
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self::from_tick(2000)
    }
}

/// One live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The negotiated timeout, ms.
    pub timeout_ms: u32,
    /// The secret a client shows to resume it.
    pub password: [u8; 16],
    /// When it expires unless touched, ms.
    pub expires_at_ms: u64,
}

/// Every live session of a server (or, in an ensemble, of the leader).
#[derive(Debug, Clone)]
pub struct SessionTracker {
    config: SessionConfig,
    server_id: u8,
    next: u64,
    sessions: HashMap<SessionId, Session>,
}

impl SessionTracker {
    /// No sessions yet; ids will carry `server_id` in their top byte.
    pub fn new(config: SessionConfig, server_id: u8) -> Self {
        SessionTracker { config, server_id, next: 1, sessions: HashMap::new() }
    }

    /// The limits in force.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no live sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Opens a session. `password` is the caller's random secret (this core reads no random
    /// numbers). Returns the session with its negotiated timeout.
    pub fn open(&mut self, now_ms: u64, requested_timeout_ms: u32, password: [u8; 16]) -> Session {
        let id = (u64::from(self.server_id) << 56) | (self.next & 0x00ff_ffff_ffff_ffff);
        self.next += 1;
        let timeout_ms = self.config.clamp(requested_timeout_ms);
        let s = Session { id, timeout_ms, password, expires_at_ms: now_ms + u64::from(timeout_ms) };
        self.sessions.insert(id, s.clone());
        s
    }

    /// Re-registers a session recovered from the log; it gets a full timeout from `now_ms`.
    pub fn restore(&mut self, now_ms: u64, id: SessionId, timeout_ms: u32, password: [u8; 16]) {
        self.next = self.next.max((id & 0x00ff_ffff_ffff_ffff) + 1);
        self.sessions
            .insert(id, Session { id, timeout_ms, password, expires_at_ms: now_ms + u64::from(timeout_ms) });
    }

    /// Makes new ids count on from `counter` at least (so a restarted server does not hand
    /// out the ids of sessions it made before; the shell seeds it from the wall clock, as
    /// ZooKeeper does).
    pub fn start_ids_after(&mut self, counter: u64) {
        self.next = self.next.max(counter & 0x00ff_ffff_ffff_ffff);
    }

    /// Whether a session is live here.
    pub fn contains(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    /// Resumes a session on reconnection: the password must match and the session must be
    /// live. A resumed session is touched.
    pub fn resume(
        &mut self,
        now_ms: u64,
        id: SessionId,
        password: &[u8; 16],
    ) -> Result<Session, KeeperError> {
        match self.sessions.get_mut(&id) {
            Some(s) if &s.password == password => {
                s.expires_at_ms = now_ms + u64::from(s.timeout_ms);
                Ok(s.clone())
            }
            // A wrong password is told the same as an expired session: nothing to learn.
            _ => Err(KeeperError::SessionExpired { session: id }),
        }
    }

    /// Records that the client was heard from.
    pub fn touch(&mut self, now_ms: u64, id: SessionId) -> Result<(), KeeperError> {
        let s = self.sessions.get_mut(&id).ok_or(KeeperError::SessionExpired { session: id })?;
        s.expires_at_ms = now_ms + u64::from(s.timeout_ms);
        Ok(())
    }

    /// Ends a session the client closed. Returns whether it was live.
    pub fn close(&mut self, id: SessionId) -> bool {
        self.sessions.remove(&id).is_some()
    }

    /// Removes and returns every session whose time is up, oldest deadline first.
    pub fn tick(&mut self, now_ms: u64) -> Vec<SessionId> {
        let mut expired: Vec<(u64, SessionId)> = self
            .sessions
            .values()
            .filter(|s| s.expires_at_ms <= now_ms)
            .map(|s| (s.expires_at_ms, s.id))
            .collect();
        expired.sort_unstable();
        for (_, id) in &expired {
            self.sessions.remove(id);
        }
        expired.into_iter().map(|(_, id)| id).collect()
    }

    /// The earliest expiry deadline, for scheduling the next tick.
    pub fn next_deadline(&self) -> Option<u64> {
        self.sessions.values().map(|s| s.expires_at_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_clamped_to_two_and_twenty_ticks() {
        let c = SessionConfig::from_tick(2000);
        assert_eq!(c.clamp(1000), 4000);
        assert_eq!(c.clamp(6000), 6000);
        assert_eq!(c.clamp(100_000), 40_000);
        let mut t = SessionTracker::new(c, 1);
        assert_eq!(t.open(0, 1, [0; 16]).timeout_ms, 4000);
    }

    #[test]
    fn a_session_expires_only_after_its_timeout_without_being_heard() {
        let mut t = SessionTracker::new(SessionConfig::from_tick(1000), 3);
        let s = t.open(10_000, 5000, [7; 16]);
        assert_eq!(s.id >> 56, 3, "the server id is in the top byte");
        assert!(t.tick(14_999).is_empty());
        t.touch(14_000, s.id).expect("touch");
        assert!(t.tick(18_999).is_empty(), "the touch moved the deadline to 19,000");
        assert_eq!(t.next_deadline(), Some(19_000));
        assert_eq!(t.tick(19_000), vec![s.id]);
        assert!(t.is_empty());
        assert_eq!(t.touch(19_001, s.id), Err(KeeperError::SessionExpired { session: s.id }));
    }

    #[test]
    fn resume_needs_the_password_and_a_live_session() {
        let mut t = SessionTracker::new(SessionConfig::from_tick(1000), 1);
        let s = t.open(0, 4000, [9; 16]);
        assert!(t.resume(1000, s.id, &[8; 16]).is_err(), "wrong password");
        assert_eq!(t.resume(3000, s.id, &[9; 16]).expect("resume").expires_at_ms, 7000);
        assert!(t.close(s.id));
        assert_eq!(t.resume(3001, s.id, &[9; 16]), Err(KeeperError::SessionExpired { session: s.id }));
    }

    #[test]
    fn expired_sessions_come_out_oldest_first() {
        let mut t = SessionTracker::new(SessionConfig::from_tick(1000), 1);
        let a = t.open(0, 5000, [0; 16]);
        let b = t.open(0, 2000, [0; 16]);
        let c = t.open(0, 3000, [0; 16]);
        assert_eq!(t.tick(10_000), vec![b.id, c.id, a.id]);
    }
}
