//! `LogManager`: the actor that runs the periodic work of every local log — flush
//! (`log.flush.interval.*`, and segments once rolled), retention (`log.retention.*`) — and
//! keeps each log directory's checkpoint files current: `recovery-point-offset-checkpoint`,
//! so that a restart after a crash re-checks only what was not yet flushed;
//! `replication-offset-checkpoint` (high watermarks); `log-start-offset-checkpoint` (log
//! starts moved by DeleteRecords, written at once when one moves: [`TickNow`]).
//!
//! It owns no log: each log belongs to its partition's actor. The manager's timer sends each
//! one a [`Tick`]; the actor runs [`sluice_log::Log::tick`] and answers with its recovery
//! point.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sluice_log::checkpoint::{
    self, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
};
use sluice_log::{LogCleaner, TopicPartition};
use tracing::warn;

use crate::broker::partition::{LogSize, Marks, Partition, Tick};

/// The log manager.
#[derive(Debug)]
pub struct LogManager {
    interval: Duration,
    /// Running partitions: their actor and their log directory's parent (the `log.dirs`
    /// entry they live in).
    partitions: HashMap<TopicPartition, (Addr<Partition>, PathBuf)>,
    /// Failed log directories: nothing is written there any more.
    offline: std::collections::BTreeSet<PathBuf>,
    /// Last known recovery point of every partition, by log directory.
    recovery_points: BTreeMap<PathBuf, BTreeMap<TopicPartition, i64>>,
    /// Each partition's high watermark, per log dir (`replication-offset-checkpoint`).
    high_watermarks: BTreeMap<PathBuf, BTreeMap<TopicPartition, i64>>,
    /// Each partition's log start, per log dir (`log-start-offset-checkpoint`).
    log_starts: BTreeMap<PathBuf, BTreeMap<TopicPartition, i64>>,
    ticking: bool,
    /// A tick was asked for while one ran: run another when it ends.
    tick_again: bool,
    cleaner: Arc<LogCleaner>,
    /// `log.retention.check.interval.ms`: retention runs on the ticks this far apart.
    retention_interval: Duration,
    /// When retention last ran.
    last_retention: Option<std::time::Instant>,
}

impl LogManager {
    /// A manager ticking every `interval` (flushes, checkpoints) and applying retention
    /// every `retention_interval`; `log_dirs` start from their checkpoint files. The cleaner
    /// is woken on every tick, so logs made dirtier by appends are looked at.
    pub fn new(
        interval: Duration,
        retention_interval: Duration,
        log_dirs: &[PathBuf],
        cleaner: Arc<LogCleaner>,
    ) -> Self {
        let mut recovery_points = BTreeMap::new();
        for dir in log_dirs {
            let points = checkpoint::read(&dir.join(RECOVERY_POINT_CHECKPOINT)).unwrap_or_else(|e| {
                warn!(dir = %dir.display(), error = %e, "unreadable recovery point checkpoint; logs will be fully checked");
                BTreeMap::new()
            });
            recovery_points.insert(dir.clone(), points);
        }
        let high_watermarks = log_dirs.iter().map(|d| (d.clone(), read_high_watermarks(d))).collect();
        let log_starts = log_dirs
            .iter()
            .map(|d| {
                let starts = checkpoint::read(&d.join(LOG_START_OFFSET_CHECKPOINT)).unwrap_or_else(|e| {
                    warn!(dir = %d.display(), error = %e, "unreadable log start checkpoint; logs start at their first segment");
                    BTreeMap::new()
                });
                (d.clone(), starts)
            })
            .collect();
        LogManager {
            interval,
            partitions: HashMap::new(),
            offline: Default::default(),
            recovery_points,
            high_watermarks,
            log_starts,
            ticking: false,
            tick_again: false,
            cleaner,
            retention_interval,
            last_retention: None,
        }
    }

    fn write_checkpoints(&self) {
        let working = |(dir, _): &(&PathBuf, _)| !self.offline.contains(*dir);
        for (dir, hws) in self.high_watermarks.iter().filter(working) {
            if let Err(e) = checkpoint::write(&dir.join(REPLICATION_OFFSET_CHECKPOINT), hws) {
                warn!(dir = %dir.display(), error = %e, "could not write the high watermark checkpoint");
            }
        }
        for (dir, points) in self.recovery_points.iter().filter(working) {
            if let Err(e) = checkpoint::write(&dir.join(RECOVERY_POINT_CHECKPOINT), points) {
                warn!(dir = %dir.display(), error = %e, "could not write the recovery point checkpoint");
            }
        }
        for (dir, starts) in self.log_starts.iter().filter(working) {
            if let Err(e) = checkpoint::write(&dir.join(LOG_START_OFFSET_CHECKPOINT), starts) {
                warn!(dir = %dir.display(), error = %e, "could not write the log start checkpoint");
            }
        }
    }

    /// Records (or with `None` forgets) a partition's marks.
    fn record(&mut self, dir: PathBuf, tp: TopicPartition, marks: Option<Marks>) {
        let points = self.recovery_points.entry(dir.clone()).or_default();
        let hws = self.high_watermarks.entry(dir.clone()).or_default();
        let starts = self.log_starts.entry(dir).or_default();
        match marks {
            Some(m) => {
                points.insert(tp.clone(), m.recovery_point);
                hws.insert(tp.clone(), m.high_watermark);
                starts.insert(tp, m.log_start_offset);
            }
            None => {
                points.remove(&tp);
                hws.remove(&tp);
                starts.remove(&tp);
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking {
            return;
        }
        self.tick_again = false;
        self.ticking = true;
        let since = self.last_retention.map(|t| t.elapsed().as_millis() as u64);
        let retention = sluice_broker_core::partition::retention_due(
            since,
            self.retention_interval.as_millis() as u64,
            self.interval.as_millis() as u64,
        );
        if retention {
            self.last_retention = Some(std::time::Instant::now());
        }
        let targets: Vec<_> =
            self.partitions.iter().map(|(tp, (addr, dir))| (tp.clone(), addr.clone(), dir.clone())).collect();
        let work = async move {
            let mut points = Vec::new();
            for (tp, addr, dir) in targets {
                if let Ok(Some((_, marks))) = addr.send(Tick { retention }).await {
                    points.push((dir, tp, marks));
                }
            }
            points
        };
        ctx.spawn(work.into_actor(self).map(|points, this, ctx| {
            for (dir, tp, marks) in points {
                this.record(dir, tp, Some(marks));
            }
            this.write_checkpoints();
            this.ticking = false;
            this.cleaner.wake();
            if this.tick_again {
                this.tick(ctx);
            }
        }));
    }
}

impl Actor for LogManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |this, ctx| this.tick(ctx));
    }
}

/// Every `log.dirs` entry with the partitions it holds here and their size in bytes
/// (Kafka's DescribeLogDirs), directories in order, partitions sorted.
#[derive(Debug, Message)]
#[rtype(result = "Vec<(PathBuf, Vec<(TopicPartition, u64)>)>")]
pub struct DescribeDirs;

impl Handler<DescribeDirs> for LogManager {
    type Result = ResponseFuture<Vec<(PathBuf, Vec<(TopicPartition, u64)>)>>;

    fn handle(&mut self, _: DescribeDirs, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("LogManager", "DescribeDirs");
        let dirs: Vec<PathBuf> = self.recovery_points.keys().cloned().collect();
        let targets: Vec<_> =
            self.partitions.iter().map(|(tp, (addr, dir))| (tp.clone(), addr.clone(), dir.clone())).collect();
        Box::pin(async move {
            let mut out: BTreeMap<PathBuf, Vec<(TopicPartition, u64)>> =
                dirs.into_iter().map(|d| (d, Vec::new())).collect();
            for (tp, addr, dir) in targets {
                if let Ok(Some(size)) = addr.send(LogSize).await {
                    out.entry(dir).or_default().push((tp, size));
                }
            }
            out.into_iter()
                .map(|(dir, mut parts)| {
                    parts.sort();
                    (dir, parts)
                })
                .collect()
        })
    }
}

/// Tick now rather than at the next interval (after DeleteRecords, so that the moved log
/// start is checkpointed at once); a tick already running is followed by another.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TickNow;

impl Handler<TickNow> for LogManager {
    type Result = ();

    fn handle(&mut self, _: TickNow, ctx: &mut Context<Self>) {
        let _span = crate::handling!("LogManager", "TickNow");
        if self.ticking {
            self.tick_again = true;
        } else {
            self.tick(ctx);
        }
    }
}

/// A partition's actor started (its log lives under `log_dir`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Register {
    /// The partition.
    pub tp: TopicPartition,
    /// Its actor.
    pub addr: Addr<Partition>,
    /// The `log.dirs` entry holding it.
    pub log_dir: PathBuf,
}

impl Handler<Register> for LogManager {
    type Result = ();

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        let _span = crate::handling!("LogManager", "Register");
        self.partitions.insert(msg.tp, (msg.addr, msg.log_dir));
    }
}

/// A partition's actor stopped; `marks` are where its closed log stands (`None`: the
/// partition was deleted).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unregister {
    /// The partition.
    pub tp: TopicPartition,
    /// Its final recovery point and high watermark.
    pub marks: Option<Marks>,
}

impl Handler<Unregister> for LogManager {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        let _span = crate::handling!("LogManager", "Unregister");
        let Some((_, dir)) = self.partitions.remove(&msg.tp) else { return };
        self.record(dir, msg.tp, msg.marks);
        self.write_checkpoints();
    }
}

/// Forget a deleted partition that had no running actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Forget(pub TopicPartition);

impl Handler<Forget> for LogManager {
    type Result = ();

    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        let _span = crate::handling!("LogManager", "Forget");
        let maps = self.recovery_points.values_mut().chain(self.high_watermarks.values_mut());
        for points in maps.chain(self.log_starts.values_mut()) {
            points.remove(&msg.0);
        }
        self.write_checkpoints();
    }
}

/// The high watermarks checkpointed in `dir` (empty if none or unreadable: a high watermark
/// only ever starts lower, which is safe).
pub fn read_high_watermarks(dir: &std::path::Path) -> BTreeMap<TopicPartition, i64> {
    checkpoint::read(&dir.join(REPLICATION_OFFSET_CHECKPOINT)).unwrap_or_else(|e| {
        warn!(dir = %dir.display(), error = %e, "unreadable high watermark checkpoint; high watermarks start at 0");
        BTreeMap::new()
    })
}

/// A log directory failed: stop writing checkpoints there (its partitions are closed by the
/// replica manager).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DirOffline(pub PathBuf);

impl Handler<DirOffline> for LogManager {
    type Result = ();

    fn handle(&mut self, DirOffline(dir): DirOffline, _: &mut Context<Self>) {
        let _span = crate::handling!("LogManager", "DirOffline");
        self.offline.insert(dir);
    }
}
