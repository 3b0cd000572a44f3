//! [`LogCleaner`]: Kafka's log cleaner, a pool of `log.cleaner.threads` worker threads that
//! compact the logs registered with it. One pass over one log is [`crate::cleaner`]'s job;
//! this module decides which log, when, and keeps the `cleaner-offset-checkpoint` files.
//!
//! A worker picks, among the registered logs whose `cleanup.policy` includes `compact`, the
//! one with the highest dirty ratio that reaches its `min.cleanable.dirty.ratio` and that no
//! other worker is cleaning (a log is claimed under the pool's lock, so it is never cleaned
//! on two threads at once). It holds the log's mutex only to plan the pass and to swap the
//! result in, not while reading and writing segments. After a pass it records the new
//! first dirty offset in the `cleaner-offset-checkpoint` of the log's parent directory
//! (Kafka's file, read when a log is registered). A pass that fails marks the log
//! uncleanable until it is registered again, as Kafka does. Idle workers wait on a condvar
//! for [`LogCleaner::wake`] (or a registration), at most `log.cleaner.backoff.ms` — no
//! polling loop, no sleep.
//!
//! Threads, but no clock: the time a pass uses comes from the clock the owner passes in.
//! The logs are shared with their owners as `Arc<Mutex<Log>>`; the pool takes the pool lock
//! and a log's lock one after the other, never one inside the other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::checkpoint::{self, CLEANER_OFFSET_CHECKPOINT};
use crate::cleaner::CleanReport;
use crate::error::LogError;
use crate::Log;
use crate::TopicPartition;

/// `log.cleaner.threads`.
pub const DEFAULT_CLEANER_THREADS: usize = 1;
/// 15 s: `log.cleaner.backoff.ms`.
pub const DEFAULT_CLEANER_BACKOFF_MS: u64 = 15_000;

/// The pool's settings, under Kafka's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanerConfig {
    /// `log.cleaner.threads`: worker threads. 0 starts none: passes then run only through
    /// [`LogCleaner::run_once`].
    pub threads: usize,
    /// `log.cleaner.backoff.ms`: how long an idle worker waits before looking again when
    /// nobody wakes it.
    pub backoff_ms: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig { threads: DEFAULT_CLEANER_THREADS, backoff_ms: DEFAULT_CLEANER_BACKOFF_MS }
    }
}

/// What the pool did, reported to the observer given to [`LogCleaner::start`] and returned
/// by [`LogCleaner::run_once`].
#[derive(Debug, Clone)]
pub enum CleanerEvent {
    /// A pass over the log in `dir` began.
    Started {
        /// The partition directory.
        dir: PathBuf,
        /// Where its dirty section begins.
        first_dirty_offset: i64,
    },
    /// The pass was swapped in and the checkpoint moved to `report.end_offset`.
    Cleaned {
        /// The partition directory.
        dir: PathBuf,
        /// What the pass did.
        report: CleanReport,
    },
    /// The log changed under the pass (retention, truncation); nothing was swapped and the
    /// log stays dirty.
    Aborted {
        /// The partition directory.
        dir: PathBuf,
    },
    /// The pass failed; the log is not cleaned again until registered again.
    Failed {
        /// The partition directory.
        dir: PathBuf,
        /// Why.
        error: String,
    },
}

/// Worker threads that panicked, found when the pool was shut down.
#[derive(Debug, thiserror::Error)]
#[error("{0} log cleaner thread(s) panicked")]
pub struct WorkerPanicked(pub usize);

type Clock = Box<dyn Fn() -> i64 + Send + Sync>;
type Observer = Box<dyn Fn(&CleanerEvent) + Send + Sync>;

/// The pool of cleaner threads (see the module docs). Dropping it shuts it down.
pub struct LogCleaner {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    clock: Clock,
    observer: Observer,
    backoff: Duration,
    /// Serialises the read-modify-write of checkpoint files shared by several logs.
    checkpoints: Mutex<()>,
}

#[derive(Default)]
struct State {
    logs: BTreeMap<PathBuf, Entry>,
    /// Bumped by every wake-up, so a worker that found nothing to do does not miss one
    /// that came while it was looking.
    wakeups: u64,
    shutdown: bool,
}

struct Entry {
    log: Arc<Mutex<Log>>,
    topic_partition: TopicPartition,
    checkpoint: Option<PathBuf>,
    first_dirty: i64,
    busy: bool,
    uncleanable: bool,
}

/// A log claimed by one worker.
struct Claim {
    dir: PathBuf,
    log: Arc<Mutex<Log>>,
    first_dirty: i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding a lock left the data as its last complete
    // assignment did (the pool's bookkeeping is updated field by field; a log is changed by
    // whole operations), so carry on rather than spread the panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogCleaner {
    /// Starts `config.threads` workers. `clock` gives `now` in milliseconds for each pass;
    /// `observer` hears every [`CleanerEvent`] (from the worker's thread, no lock held).
    pub fn start(
        config: CleanerConfig,
        clock: impl Fn() -> i64 + Send + Sync + 'static,
        observer: impl Fn(&CleanerEvent) + Send + Sync + 'static,
    ) -> LogCleaner {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            clock: Box::new(clock),
            observer: Box::new(observer),
            backoff: Duration::from_millis(config.backoff_ms),
            checkpoints: Mutex::new(()),
        });
        let workers = (0..config.threads)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new().name(format!("log-cleaner-{i}")).spawn(move || shared.work())
            })
            .filter_map(|spawned| match spawned {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::error!(error = %e, "could not start a log cleaner thread");
                    None
                }
            })
            .collect();
        LogCleaner { shared, workers }
    }

    /// Registers a log (again: an uncleanable log becomes cleanable), starting from the
    /// offset recorded for it in its parent directory's `cleaner-offset-checkpoint` (0 if
    /// none or unreadable: cleaning from the start is always safe), and wakes the workers.
    pub fn register(&self, log: Arc<Mutex<Log>>) {
        let (dir, topic_partition) = {
            let l = lock(&log);
            (l.dir().to_path_buf(), l.topic_partition().clone())
        };
        let checkpoint = dir.parent().map(|p| p.join(CLEANER_OFFSET_CHECKPOINT));
        let first_dirty = checkpoint.as_deref().map_or(0, |path| {
            let _files = lock(&self.shared.checkpoints);
            match checkpoint::read(path) {
                Ok(offsets) => offsets.get(&topic_partition).copied().unwrap_or(0),
                Err(e) => {
                    tracing::warn!(error = %e, "cleaner checkpoint unreadable; cleaning from the start");
                    0
                }
            }
        });
        let entry = Entry { log, topic_partition, checkpoint, first_dirty, busy: false, uncleanable: false };
        lock(&self.shared.state).logs.insert(dir, entry);
        self.wake();
    }

    /// Stops considering the log in `dir`. A pass already running on it finishes.
    pub fn unregister(&self, dir: &Path) {
        lock(&self.shared.state).logs.remove(dir);
    }

    /// Tells the pool that the log in `dir` was truncated to `offset` (Kafka's
    /// `maybeTruncateCheckpoint`): what follows is new data, dirty again.
    pub fn truncated(&self, dir: &Path, offset: i64) {
        let update = {
            let mut state = lock(&self.shared.state);
            state.logs.get_mut(dir).filter(|e| e.first_dirty > offset).map(|e| {
                e.first_dirty = offset;
                (e.checkpoint.clone(), e.topic_partition.clone())
            })
        };
        if let Some((path, tp)) = update {
            self.shared.write_checkpoint(path.as_deref(), tp, offset);
        }
    }

    /// The first dirty offset the pool holds for the log in `dir`.
    pub fn first_dirty_offset(&self, dir: &Path) -> Option<i64> {
        lock(&self.shared.state).logs.get(dir).map(|e| e.first_dirty)
    }

    /// Wakes the idle workers (say, after appends made a log dirtier).
    pub fn wake(&self) {
        lock(&self.shared.state).wakeups += 1;
        self.shared.wake.notify_all();
    }

    /// One pass over the dirtiest cleanable log, on the calling thread: what it ended in,
    /// `None` if no log is cleanable.
    pub fn run_once(&self) -> Option<CleanerEvent> {
        self.shared.run_once()
    }

    /// Stops the workers and waits for them (a pass in progress finishes first).
    pub fn shutdown(mut self) -> Result<(), WorkerPanicked> {
        match self.stop() {
            0 => Ok(()),
            n => Err(WorkerPanicked(n)),
        }
    }

    /// Stops and joins the workers; how many had panicked.
    fn stop(&mut self) -> usize {
        lock(&self.shared.state).shutdown = true;
        self.shared.wake.notify_all();
        self.workers.drain(..).map(JoinHandle::join).filter(Result::is_err).count()
    }
}

impl Drop for LogCleaner {
    fn drop(&mut self) {
        let panicked = self.stop();
        if panicked > 0 {
            tracing::error!(panicked, "log cleaner threads panicked");
        }
    }
}

impl std::fmt::Debug for LogCleaner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCleaner").field("workers", &self.workers.len()).finish_non_exhaustive()
    }
}

impl Shared {
    /// A worker: clean while there is something to clean, then wait for a wake-up.
    fn work(&self) {
        loop {
            let seen = {
                let state = lock(&self.state);
                if state.shutdown {
                    return;
                }
                state.wakeups
            };
            if self.run_once().is_some() {
                continue;
            }
            let state = lock(&self.state);
            if state.shutdown {
                return;
            }
            if state.wakeups == seen {
                drop(self.wake.wait_timeout(state, self.backoff).unwrap_or_else(PoisonError::into_inner));
            }
        }
    }

    fn run_once(&self) -> Option<CleanerEvent> {
        let now_ms = (self.clock)();
        let claim = self.claim_dirtiest(now_ms)?;
        let event = self.clean(&claim, now_ms);
        let mut state = lock(&self.state);
        if let Some(entry) = state.logs.get_mut(&claim.dir) {
            entry.busy = false;
            match &event {
                CleanerEvent::Cleaned { report, .. } => entry.first_dirty = report.end_offset,
                CleanerEvent::Failed { .. } => entry.uncleanable = true,
                _ => {}
            }
        }
        drop(state);
        (self.observer)(&event);
        Some(event)
    }

    /// Claims the cleanable log with the highest dirty ratio that no worker is cleaning.
    fn claim_dirtiest(&self, now_ms: i64) -> Option<Claim> {
        loop {
            let candidates: Vec<Claim> = lock(&self.state)
                .logs
                .iter()
                .filter(|(_, e)| !e.busy && !e.uncleanable)
                .map(|(dir, e)| Claim {
                    dir: dir.clone(),
                    log: Arc::clone(&e.log),
                    first_dirty: e.first_dirty,
                })
                .collect();
            let mut best: Option<(f64, Claim)> = None;
            for c in candidates {
                let stats = {
                    let log = lock(&c.log);
                    let config = log.config();
                    let stats = log.dirty_stats(c.first_dirty, now_ms);
                    (config.cleanup_policy.compact && stats.is_cleanable(config.min_cleanable_dirty_ratio))
                        .then(|| stats.dirty_ratio())
                };
                if let Some(ratio) = stats.filter(|r| best.as_ref().is_none_or(|(b, _)| r > b)) {
                    best = Some((ratio, c));
                }
            }
            let (_, claim) = best?;
            let mut state = lock(&self.state);
            match state.logs.get_mut(&claim.dir) {
                Some(e) if !e.busy && !e.uncleanable && e.first_dirty == claim.first_dirty => {
                    e.busy = true;
                    return Some(claim);
                }
                // Another worker took it (or it changed) meanwhile: look again.
                _ => continue,
            }
        }
    }

    fn clean(&self, claim: &Claim, now_ms: i64) -> CleanerEvent {
        let dir = claim.dir.clone();
        (self.observer)(&CleanerEvent::Started { dir: dir.clone(), first_dirty_offset: claim.first_dirty });
        let outcome = (|| -> Result<Option<CleanReport>, LogError> {
            let Some(plan) = lock(&claim.log).plan_clean(claim.first_dirty, now_ms)? else { return Ok(None) };
            let prepared = plan.prepare()?;
            lock(&claim.log).install_clean(prepared, now_ms)
        })();
        match outcome {
            Ok(Some(report)) => {
                let target = {
                    let state = lock(&self.state);
                    state.logs.get(&dir).map(|e| (e.checkpoint.clone(), e.topic_partition.clone()))
                };
                if let Some((path, tp)) = target {
                    self.write_checkpoint(path.as_deref(), tp, report.end_offset);
                }
                CleanerEvent::Cleaned { dir, report }
            }
            Ok(None) => CleanerEvent::Aborted { dir },
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cleaning failed; the log is left uncleaned");
                CleanerEvent::Failed { dir, error: e.to_string() }
            }
        }
    }

    /// Records `offset` for `tp` in a cleaner checkpoint file. A failure only means a later
    /// start cleans again from an older offset, so it is logged, not returned.
    fn write_checkpoint(&self, path: Option<&Path>, tp: TopicPartition, offset: i64) {
        let Some(path) = path else { return };
        let _files = lock(&self.checkpoints);
        let result = checkpoint::read(path).and_then(|mut offsets| {
            offsets.insert(tp, offset);
            checkpoint::write(path, &offsets)
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not write the cleaner checkpoint");
        }
    }
}
