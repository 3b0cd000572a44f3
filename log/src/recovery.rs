//! Opening a partition directory: which files are segments, which segments can be trusted
//! as they are, and which must be scanned.
//!
//! Every segment is first *loaded*: its indexes are read and sanity-checked and the batches
//! after the last offset-index entry are CRC-checked (a few KiB). A segment whose data all
//! lies below the recovery point (it was fsynced, indexes included) is then used as is.
//! Any other segment — holding data past the recovery point, or with a missing, torn or
//! inconsistent index — is *recovered*: scanned batch by batch (length, magic, CRC, offsets
//! in order), cut at the first bad batch, indexes rebuilt. Once a segment had to be cut,
//! every later segment is deleted: what follows a hole cannot be trusted to continue it.
//!
//! A cleaner swap that a crash interrupted after its commit point (a `<base>.log.swap`
//! file exists) is finished first: see [`finish_swaps`]. Then leftovers of interrupted
//! operations (`*.deleted`, `*.cleaned`, `*.swap`, `*.tmp`) and index files without a
//! `.log` are removed — an uncommitted cleaning is rolled back by removing its output. Unknown
//! files are left alone.

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::LogConfig;
use crate::error::{IoContext, LogError};
pub use crate::segment::Truncation;
use crate::segment::{file_name, Loaded, Segment, SEGMENT_EXTS, SWAP_SUFFIX};

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The recovery point used: data below it was taken as durable.
    pub recovery_point: i64,
    /// Segments used as they were (below the recovery point, indexes sound).
    pub loaded_segments: usize,
    /// Base offsets of segments scanned in full (unflushed data or unsound indexes).
    pub recovered_segments: Vec<i64>,
    /// Segments whose indexes were missing or unsound, with the reason; their indexes
    /// were rebuilt.
    pub rebuilt_indexes: Vec<(i64, String)>,
    /// Where a segment was cut, if one was.
    pub truncation: Option<Truncation>,
    /// Base offsets of segments deleted because they followed a cut.
    pub deleted_segments: Vec<i64>,
    /// Leftover files removed.
    pub removed_files: Vec<PathBuf>,
    /// Base offsets of cleaned segments whose interrupted swap was finished (the segments
    /// they replace were deleted, their indexes rebuilt).
    pub finished_swaps: Vec<i64>,
    /// Why the recovery-point checkpoint could not be read (recovery then scanned every
    /// segment, which is always safe).
    pub checkpoint_error: Option<String>,
    /// Why the leader-epoch cache (`leader-epoch-checkpoint`, [`crate::epoch`]) was rebuilt
    /// from the segments' batch headers: the file was malformed (the error, naming the
    /// line), or missing from a log that holds batches. `None` when the file was read (or
    /// the log is new and empty).
    pub epoch_cache_rebuilt: Option<String>,
}

const LEFTOVER_SUFFIXES: [&str; 4] = [".deleted", ".cleaned", ".swap", ".tmp"];

/// `<20 digits>.<ext>` → (base offset, ext).
fn parse_segment_file(name: &str) -> Option<(i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

pub(crate) fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).ctx("remove", path),
        _ => Ok(()),
    }
}

/// Finishes the cleaner swaps that were committed but not completed (see
/// [`crate::cleaner`] for the order of its renames). The cleaner renames `<base>.log.cleaned`
/// to `<base>.log.swap` only once the cleaned segment is fsynced: from then on the swap is
/// committed. A cleaned segment always ends with the last offset of the segments it
/// replaces (the cleaner keeps an empty batch there if it removed every record), so those
/// are exactly the live segments whose base offset lies in `[base, end of the .swap)`.
/// Each `.log.swap` is renamed over `<base>.log`, those segments are deleted, and the
/// swapped segment's indexes are rebuilt from its batches (its `.index.swap` /
/// `.timeindex.swap`, if still there, are removed with the other leftovers).
fn finish_swaps(
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
    report: &mut RecoveryReport,
) -> Result<(), LogError> {
    let suffix = format!(".log{SWAP_SUFFIX}");
    let mut swaps = Vec::new();
    let mut live = Vec::new();
    for entry in fs::read_dir(dir).ctx("list partition directory", dir)? {
        let entry = entry.ctx("list partition directory", dir)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let swapped = name.strip_suffix(&suffix).map(|stem| format!("{stem}.log"));
        if let Some((base, "log")) = swapped.as_deref().and_then(parse_segment_file) {
            swaps.push(base);
        } else if let Some((base, ext)) = parse_segment_file(&name) {
            if SEGMENT_EXTS.contains(&ext) {
                live.push((base, entry.path()));
            }
        }
    }
    if swaps.is_empty() {
        return Ok(());
    }
    swaps.sort_unstable();
    for base in swaps {
        let log = dir.join(file_name(base, "log"));
        let swap = dir.join(file_name(base, "log") + SWAP_SUFFIX);
        fs::rename(&swap, &log).ctx("rename swap file", &swap)?;
        for ext in ["index", "timeindex"] {
            remove_if_present(&dir.join(file_name(base, ext)))?;
        }
        let (seg, _) = Segment::recover(dir, base, None, now_ms, config.index_interval_bytes)?;
        let end = seg.next_offset();
        drop(seg);
        for (_, path) in live.iter().filter(|(b, _)| *b > base && *b < end) {
            remove_if_present(path)?;
            report.removed_files.push(path.clone());
        }
        tracing::warn!(dir = %dir.display(), base, end, "finished a cleaner swap interrupted by a crash");
        report.finished_swaps.push(base);
    }
    sync_dir(dir)
}

/// fsyncs a partition directory, so that files created, renamed or removed in it stay so.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).ctx("fsync partition directory", dir)
}

/// Opens the segments of `dir` (creating it, and a first segment, if needed).
pub(crate) fn open_segments(
    dir: &Path,
    config: &LogConfig,
    recovery_point: i64,
    now_ms: i64,
) -> Result<(VecDeque<Segment>, RecoveryReport), LogError> {
    if !dir.exists() {
        fs::create_dir_all(dir).ctx("create partition directory", dir)?;
        // The new directory's entry must reach the disk before anything in it matters.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::File::open(parent).and_then(|p| p.sync_all()).ctx("fsync log directory", parent)?;
        }
    }
    let mut report = RecoveryReport::default();
    finish_swaps(dir, config, now_ms, &mut report)?;
    let mut logs = BTreeSet::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).ctx("list partition directory", dir)? {
        let entry = entry.ctx("list partition directory", dir)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if LEFTOVER_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            remove_if_present(&entry.path())?;
            report.removed_files.push(entry.path());
            continue;
        }
        match parse_segment_file(&name) {
            Some((base, "log")) => {
                logs.insert(base);
            }
            Some((base, "index" | "timeindex")) => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    for (base, path) in indexes {
        if !logs.contains(&base) {
            remove_if_present(&path)?;
            report.removed_files.push(path);
        }
    }

    let interval = config.index_interval_bytes;
    let bases: Vec<i64> = logs.into_iter().collect();
    let mut segments = VecDeque::with_capacity(bases.len().max(1));
    let mut cut = false;
    for (i, &base) in bases.iter().enumerate() {
        if cut {
            for ext in ["log", "index", "timeindex"] {
                remove_if_present(&dir.join(file_name(base, ext)))?;
            }
            report.deleted_segments.push(base);
            continue;
        }
        let next_base = bases.get(i + 1).copied();
        let seg = match Segment::load(dir, base, now_ms, interval)? {
            Loaded::Ready(seg)
                if seg.next_offset() <= recovery_point
                    && next_base.is_none_or(|n| seg.next_offset() <= n) =>
            {
                report.loaded_segments += 1;
                seg
            }
            other => {
                if let Loaded::NeedsRecovery(reason) = other {
                    tracing::warn!(dir = %dir.display(), base, %reason, "rebuilding the indexes of a segment");
                    report.rebuilt_indexes.push((base, reason));
                }
                let (seg, cut_at) = Segment::recover(dir, base, next_base, now_ms, interval)?;
                report.recovered_segments.push(base);
                if let Some(t) = cut_at {
                    tracing::warn!(
                        dir = %dir.display(), base, position = t.position, bytes = t.bytes, reason = %t.reason,
                        "cut a segment at its first invalid batch; later segments are deleted"
                    );
                    report.truncation = Some(t);
                    cut = true;
                }
                seg
            }
        };
        segments.push_back(seg);
    }
    let last = segments.len().saturating_sub(1);
    for seg in segments.iter_mut().take(last) {
        seg.seal()?;
    }
    if segments.is_empty() {
        segments.push_back(Segment::create(dir, 0, now_ms)?);
    }
    Ok((segments, report))
}
