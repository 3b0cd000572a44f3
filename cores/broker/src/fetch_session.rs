//! Incremental fetch sessions (Kafka's KIP-227), as rules.
//!
//! A consumer that fetches the same partitions over and over opens a session with a full
//! fetch (`session_id` 0, `epoch` 0); the broker remembers the partitions and their fetch
//! positions, and each later fetch (`session_id`, `epoch` 1, 2, ...) names only what changed
//! (new positions, added partitions, forgotten ones). The answer to an incremental fetch
//! carries only partitions with something new: records, an error, or a moved high watermark
//! or log start. `epoch` -1 closes a session (and is a sessionless full fetch).
//!
//! The Kafka door keeps one [`FetchSessions`] per broker and runs each fetch through
//! [`FetchSessions::open`] (what to read) and [`FetchSessions::answered`] (what to send).

use std::collections::{BTreeMap, VecDeque};

/// Kafka's `FINAL_EPOCH`: a sessionless fetch, or the close of a session.
pub const FINAL_EPOCH: i32 = -1;
/// Kafka's `INITIAL_EPOCH`: a full fetch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;

/// Where a session's partition is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The next offset wanted.
    pub offset: i64,
    /// Most bytes for this partition.
    pub max_bytes: u32,
}

/// One partition of a fetch request, as sent.
pub type Wanted = ((String, i32), Position);

/// Why a fetch's session cannot be used (the whole fetch fails with this code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session has this id (it expired, was evicted, or never existed): the client
    /// starts a new one (Kafka 70, FETCH_SESSION_ID_NOT_FOUND).
    #[error(
        "fetch session {0} is not known here (evicted or never opened); open a new one with a full fetch"
    )]
    NotFound(i32),
    /// The epoch is not the next one (Kafka 71, INVALID_FETCH_SESSION_EPOCH).
    #[error("fetch session {id} expected epoch {expected}, got {got}")]
    InvalidEpoch {
        /// The session.
        id: i32,
        /// The epoch it waits for.
        expected: i32,
        /// The epoch sent.
        got: i32,
    },
}

impl SessionError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        match self {
            SessionError::NotFound(_) => 70,
            SessionError::InvalidEpoch { .. } => 71,
        }
    }
}

/// What a partition looked like in the last answer of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Seen {
    high_watermark: i64,
    log_start_offset: i64,
}

#[derive(Debug, Clone)]
struct Session {
    /// The epoch the next fetch must carry.
    next_epoch: i32,
    partitions: BTreeMap<(String, i32), (Position, Option<Seen>)>,
    /// Partition order: as first added (Kafka keeps insertion order too).
    order: Vec<(String, i32)>,
}

/// What a fetch reads and how its answer is shaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The session id to answer with (0: none).
    pub session_id: i32,
    /// Every partition to read, in order.
    pub partitions: Vec<Wanted>,
    /// Answer only partitions with news (an incremental fetch).
    pub incremental: bool,
}

/// What one partition of an answer holds, to decide whether an incremental answer includes
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// Records were returned.
    pub has_records: bool,
    /// The partition failed.
    pub has_error: bool,
    /// Its high watermark.
    pub high_watermark: i64,
    /// Its log start offset.
    pub log_start_offset: i64,
}

/// A broker's fetch sessions, at most `capacity` (Kafka's
/// `max.incremental.fetch.session.cache.slots`, 1000): a new session beyond that evicts the
/// least recently used.
#[derive(Debug, Clone)]
pub struct FetchSessions {
    capacity: usize,
    next_id: i32,
    sessions: BTreeMap<i32, Session>,
    /// Session ids, least recently used first.
    recency: VecDeque<i32>,
}

impl FetchSessions {
    /// An empty cache of at most `capacity` sessions (0: sessions are never opened, every
    /// fetch is answered whole, as Kafka does with no slots).
    pub fn new(capacity: usize) -> Self {
        FetchSessions { capacity, next_id: 1, sessions: BTreeMap::new(), recency: VecDeque::new() }
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn touch(&mut self, id: i32) {
        self.recency.retain(|s| *s != id);
        self.recency.push_back(id);
    }

    fn remove(&mut self, id: i32) {
        self.sessions.remove(&id);
        self.recency.retain(|s| *s != id);
    }

    /// Starts a fetch of `session_id` at `epoch` naming `wanted` (new or changed positions)
    /// and `forgotten`.
    pub fn open(
        &mut self,
        session_id: i32,
        epoch: i32,
        wanted: Vec<Wanted>,
        forgotten: &[(String, i32)],
    ) -> Result<Plan, SessionError> {
        if epoch == FINAL_EPOCH {
            // Closes the session (if any), then a sessionless full fetch.
            if session_id != 0 {
                self.remove(session_id);
            }
            return Ok(Plan { session_id: 0, partitions: wanted, incremental: false });
        }
        if epoch == INITIAL_EPOCH {
            if session_id != 0 {
                // A client re-opening: the old session goes.
                self.remove(session_id);
            }
            if self.capacity == 0 {
                return Ok(Plan { session_id: 0, partitions: wanted, incremental: false });
            }
            while self.sessions.len() >= self.capacity {
                match self.recency.pop_front() {
                    Some(old) => {
                        self.sessions.remove(&old);
                    }
                    None => break,
                }
            }
            let id = self.fresh_id();
            let mut session = Session { next_epoch: 1, partitions: BTreeMap::new(), order: Vec::new() };
            for (tp, pos) in &wanted {
                if session.partitions.insert(tp.clone(), (*pos, None)).is_none() {
                    session.order.push(tp.clone());
                }
            }
            self.sessions.insert(id, session);
            self.touch(id);
            return Ok(Plan { session_id: id, partitions: wanted, incremental: false });
        }
        let session = self.sessions.get_mut(&session_id).ok_or(SessionError::NotFound(session_id))?;
        if epoch != session.next_epoch {
            return Err(SessionError::InvalidEpoch {
                id: session_id,
                expected: session.next_epoch,
                got: epoch,
            });
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        for tp in forgotten {
            session.partitions.remove(tp);
        }
        session.order.retain(|tp| session.partitions.contains_key(tp));
        for (tp, pos) in wanted {
            match session.partitions.get_mut(&tp) {
                Some(entry) => entry.0 = pos,
                None => {
                    session.partitions.insert(tp.clone(), (pos, None));
                    session.order.push(tp);
                }
            }
        }
        let partitions = session
            .order
            .iter()
            .filter_map(|tp| session.partitions.get(tp).map(|(p, _)| (tp.clone(), *p)))
            .collect();
        self.touch(session_id);
        Ok(Plan { session_id, partitions, incremental: true })
    }

    fn fresh_id(&mut self) -> i32 {
        loop {
            let id = self.next_id;
            self.next_id = if self.next_id == i32::MAX { 1 } else { self.next_id + 1 };
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Records what the answer of `plan` held for each partition (in the plan's order) and
    /// says which to send: all of them for a full fetch, those with news for an
    /// incremental one.
    pub fn answered(&mut self, plan: &Plan, answers: &[Answered]) -> Vec<bool> {
        let session = if plan.session_id == 0 { None } else { self.sessions.get_mut(&plan.session_id) };
        let mut out = Vec::with_capacity(answers.len());
        let mut session = session;
        for ((tp, _), a) in plan.partitions.iter().zip(answers) {
            let now = Seen { high_watermark: a.high_watermark, log_start_offset: a.log_start_offset };
            let previous = match session.as_deref_mut().and_then(|s| s.partitions.get_mut(tp)) {
                Some((_, seen)) => seen.replace(now),
                None => None,
            };
            let news = a.has_records || a.has_error || previous != Some(now);
            out.push(!plan.incremental || news);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    fn at(offset: i64) -> Position {
        Position { offset, max_bytes: 1024 }
    }

    fn quiet(hw: i64) -> Answered {
        Answered { has_records: false, has_error: false, high_watermark: hw, log_start_offset: 0 }
    }

    #[test]
    fn a_session_remembers_positions_and_answers_only_news() {
        let mut s = FetchSessions::new(10);
        let full =
            s.open(0, INITIAL_EPOCH, vec![(tp("a", 0), at(0)), (tp("a", 1), at(5))], &[]).expect("opens");
        assert!(full.session_id > 0 && !full.incremental);
        assert_eq!(
            s.answered(&full, &[quiet(3), quiet(5)]),
            vec![true, true],
            "a full fetch answers everything"
        );

        // Epoch 1 names nothing: both partitions are read at their remembered positions.
        let inc = s.open(full.session_id, 1, vec![], &[]).expect("incremental");
        assert_eq!(inc.partitions, vec![(tp("a", 0), at(0)), (tp("a", 1), at(5))]);
        assert!(inc.incremental);
        // Only a moved high watermark or records are news.
        let news = s.answered(
            &inc,
            &[
                quiet(3),
                Answered { has_records: true, has_error: false, high_watermark: 5, log_start_offset: 0 },
            ],
        );
        assert_eq!(news, vec![false, true]);

        // Epoch 2 moves one position, adds a partition and forgets another.
        let inc = s
            .open(full.session_id, 2, vec![(tp("a", 0), at(3)), (tp("b", 0), at(0))], &[tp("a", 1)])
            .expect("ok");
        assert_eq!(inc.partitions, vec![(tp("a", 0), at(3)), (tp("b", 0), at(0))]);
        let news = s.answered(&inc, &[quiet(4), quiet(0)]);
        assert_eq!(news, vec![true, true], "a moved watermark and a partition never answered are news");
    }

    #[test]
    fn wrong_epochs_unknown_ids_and_closes_are_refused_or_honoured_as_kafka_does() {
        let mut s = FetchSessions::new(10);
        let full = s.open(0, INITIAL_EPOCH, vec![(tp("a", 0), at(0))], &[]).expect("opens");
        assert_eq!(
            s.open(full.session_id, 2, vec![], &[]),
            Err(SessionError::InvalidEpoch { id: full.session_id, expected: 1, got: 2 })
        );
        assert_eq!(s.open(full.session_id + 100, 1, vec![], &[]).map_err(|e| e.code()), Err(70));
        // A close is a sessionless full fetch; the session is gone after it.
        let close = s.open(full.session_id, FINAL_EPOCH, vec![(tp("a", 0), at(9))], &[]).expect("close");
        assert_eq!((close.session_id, close.incremental), (0, false));
        assert_eq!(s.open(full.session_id, 1, vec![], &[]), Err(SessionError::NotFound(full.session_id)));
        assert!(s.is_empty());
    }

    #[test]
    fn the_least_recently_used_session_is_evicted_at_capacity() {
        let mut s = FetchSessions::new(2);
        let a = s.open(0, INITIAL_EPOCH, vec![(tp("a", 0), at(0))], &[]).expect("a");
        let b = s.open(0, INITIAL_EPOCH, vec![(tp("b", 0), at(0))], &[]).expect("b");
        s.open(a.session_id, 1, vec![], &[]).expect("a used again");
        let c = s.open(0, INITIAL_EPOCH, vec![(tp("c", 0), at(0))], &[]).expect("c");
        assert_eq!(s.len(), 2);
        assert_eq!(s.open(b.session_id, 1, vec![], &[]), Err(SessionError::NotFound(b.session_id)));
        assert!(s.open(a.session_id, 2, vec![], &[]).is_ok() && s.open(c.session_id, 1, vec![], &[]).is_ok());
        // No slots: never a session.
        let mut none = FetchSessions::new(0);
        assert_eq!(none.open(0, INITIAL_EPOCH, vec![], &[]).map(|p| p.session_id), Ok(0));
    }
}
