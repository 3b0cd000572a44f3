//! A filesystem that forgets what was never synced, for power-cut tests (in the manner of
//! Jepsen's LazyFS).
//!
//! [`LazyFs::take_over`] serves a directory through FUSE from a *backing* directory beside it.
//! Every write reaches the backing file at once, so the processes using the mount see their
//! data as on any disk, but the layer remembers what each write replaced until the file is
//! synced: `fsync` and `fdatasync` make a file's writes so far durable. [`LazyFs::power_cut`]
//! then turns the backing files into a state a power cut could leave:
//! - every write not synced is undone;
//! - for a [`Cut::Seeded`] cut, some of them come back, chosen by the seed per file: none;
//!   a prefix in order with its last write torn (a part of it kept); or any subset, each
//!   possibly torn (pages written back out of order, holes between them).
//!
//! [`LazyFs::fail_syncs`] makes every `fsync` fail with EIO; the writes it covered are then
//! lost at the next cut even if a later `fsync` succeeds, as Linux drops pages whose
//! writeback failed (why an fsync must never be retried: the PostgreSQL lesson).
//!
//! Metadata is durable at once, as on a journalling filesystem that commits its metadata before
//! the data (ext4's `data=ordered`): creates, renames, unlinks, directories and truncations
//! survive a cut, so a file created and never synced comes back empty, and a file renamed over
//! another without a sync comes back with whatever of its data was synced. What this layer
//! cannot show: a lost directory entry (a missing `fsync` of a directory).
//!
//! Only what goes through the mount is tracked, and the cut must come when nothing uses it: the
//! test SIGKILLs the processes first ([`LazyFs::power_cut`] waits for their files to close).
//! Needs root and `/dev/fuse` (mounted with mount(2) directly, no `fusermount`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::nemesis::Rng;

/// Attributes and names are never cached by the kernel: after a cut, sizes change under it.
const TTL: Duration = Duration::ZERO;

/// One write or truncation not yet synced, with what it replaced.
#[derive(Debug)]
struct Pending {
    /// Where the replaced bytes start.
    offset: u64,
    /// The bytes it overwrote (or cut off), as they were.
    old: Vec<u8>,
    /// The file's length before it.
    old_len: u64,
    /// What it wrote (`None`: a truncation to `new_len`).
    new: Option<Vec<u8>>,
    /// The length it truncated to.
    new_len: u64,
    /// What a power cut does with it.
    fate: Fate,
}

/// What becomes of a write at a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not synced yet: the cut decides.
    Unsynced,
    /// Synced (kept in the list only because an older write of the file was lost).
    Synced,
    /// An fsync covering it failed: it never reaches the disk, whatever later syncs say
    /// (the kernel marks the pages clean after a failed writeback: the PostgreSQL lesson).
    Lost,
}

#[derive(Debug, Default)]
struct Inner {
    /// FUSE inode → path in the backing directory.
    paths: HashMap<u64, PathBuf>,
    /// Open files: handle → (inode, backing file).
    handles: HashMap<u64, (u64, File)>,
    next_handle: u64,
    /// Per inode, its writes since its last sync, oldest first.
    pending: HashMap<u64, Vec<Pending>>,
    /// Counters for the report.
    writes: u64,
    syncs: u64,
    /// Every fsync fails with EIO ([`LazyFs::fail_syncs`]).
    failing_syncs: bool,
    /// fsyncs that failed.
    failed_syncs: u64,
}

impl Inner {
    /// A sync of inode `ino` succeeded: its writes so far are on the disk.
    fn synced(&mut self, ino: u64) {
        let Some(ops) = self.pending.get_mut(&ino) else { return };
        if ops.iter().any(|op| op.fate == Fate::Lost) {
            for op in ops.iter_mut().filter(|op| op.fate == Fate::Unsynced) {
                op.fate = Fate::Synced;
            }
        } else {
            self.pending.remove(&ino);
        }
    }
}

/// How a power cut treats the writes that were never synced.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// All of them are lost.
    LoseAll,
    /// Per file, chosen by the seed: all lost, a prefix kept (its last write torn), or any
    /// subset kept (each kept write possibly torn).
    Seeded(u64),
}

/// What a power cut did.
#[derive(Debug, Default, Clone)]
pub struct CutReport {
    /// Files that had writes not synced.
    pub files: usize,
    /// Writes and truncations that were not synced.
    pub unsynced: usize,
    /// Of those, writes kept whole.
    pub kept: usize,
    /// Of those, writes kept in part (torn).
    pub torn: usize,
    /// Bytes written and not synced that the cut lost.
    pub bytes_lost: u64,
    /// Writes and syncs seen since the last cut.
    pub writes: u64,
    /// Syncs seen since the last cut.
    pub syncs: u64,
    /// The files that had writes not synced, relative to the mount point.
    pub names: Vec<String>,
}

impl std::fmt::Display for CutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} writes and {} syncs since the last cut; {} unsynced writes in {} files {:?}: {} kept, {} torn, {} bytes lost",
            self.writes, self.syncs, self.unsynced, self.files, self.names, self.kept, self.torn, self.bytes_lost
        )
    }
}

/// A mounted [`LazyFs`]; unmounted when dropped.
pub struct LazyFs {
    inner: Arc<Mutex<Inner>>,
    mount_point: PathBuf,
    backing: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl std::fmt::Debug for LazyFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyFs")
            .field("mount_point", &self.mount_point)
            .field("backing", &self.backing)
            .finish()
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

impl LazyFs {
    /// Mounts a lazy filesystem on `at` (an existing, empty directory), backed by
    /// `<at>.backing`.
    pub fn mount(at: &Path) -> LazyFs {
        let backing = at.with_extension("backing");
        std::fs::create_dir_all(&backing).expect("the backing directory");
        let inner = Arc::new(Mutex::new(Inner::default()));
        lock(&inner).paths.insert(INodeNo::ROOT.0, backing.clone());
        let fs = Served {
            inner: inner.clone(),
            root_ino: std::fs::metadata(&backing).map(|m| m.ino()).unwrap_or(0),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![fuser::MountOption::FSName("lazyfs".into())];
        let session = fuser::spawn_mount(fs, at, &config).unwrap_or_else(|e| {
            panic!(
                "cannot mount the lazy filesystem on {}: {e} (power-cut tests need root and /dev/fuse: \
                 run as root, `modprobe fuse`)",
                at.display()
            )
        });
        LazyFs { inner, mount_point: at.to_path_buf(), backing, session: Some(session) }
    }

    /// Moves what `dir` holds onto a lazy filesystem mounted on it, and counts all of it as
    /// synced (it was on the disk before).
    pub fn take_over(dir: &Path) -> LazyFs {
        let saved = dir.with_extension("saved");
        std::fs::rename(dir, &saved).expect("set the directory aside");
        std::fs::create_dir(dir).expect("an empty mount point");
        let fs = LazyFs::mount(dir);
        let copied = std::process::Command::new("cp").arg("-a").arg(saved.join(".")).arg(dir).status();
        assert!(copied.is_ok_and(|s| s.success()), "copy {} onto the lazy filesystem", dir.display());
        fs.sync_everything();
        fs
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Counts every write so far as synced (a quiet moment in which the page cache was
    /// written back).
    pub fn sync_everything(&self) {
        let mut inner = lock(&self.inner);
        let inodes: Vec<u64> = inner.pending.keys().copied().collect();
        for ino in inodes {
            inner.synced(ino);
        }
    }

    /// From now on (until called with `false`) every fsync fails with EIO, and the writes it
    /// covered never reach the disk, even if a later fsync succeeds (as Linux drops pages
    /// whose writeback failed). Returns how many fsyncs have failed so far.
    pub fn fail_syncs(&self, failing: bool) -> u64 {
        let mut inner = lock(&self.inner);
        inner.failing_syncs = failing;
        inner.failed_syncs
    }

    /// Files open through the mount.
    pub fn open_files(&self) -> usize {
        lock(&self.inner).handles.len()
    }

    /// Cuts the power: waits (up to 10 s) until no file is open through the mount (kill the
    /// processes using it first), then leaves every file as `how` says a power cut could.
    pub fn power_cut(&self, how: Cut) -> CutReport {
        let closed = crate::poll_until(Duration::from_secs(10), || match self.open_files() {
            0 => Ok(()),
            open => Err(format!("{open} files still open")),
        });
        if let Err(open) = closed {
            panic!("{open} on {}: stop the processes before the cut", self.mount_point.display());
        }
        let mut inner = lock(&self.inner);
        let mut report = CutReport { writes: inner.writes, syncs: inner.syncs, ..Default::default() };
        inner.writes = 0;
        inner.syncs = 0;
        let pending = std::mem::take(&mut inner.pending);
        let mut files: Vec<(PathBuf, Vec<Pending>)> = pending
            .into_iter()
            .filter_map(|(ino, ops)| Some((inner.paths.get(&ino)?.clone(), ops)))
            .filter(|(_, ops)| !ops.is_empty())
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rng = match how {
            Cut::LoseAll => None,
            Cut::Seeded(seed) => Some(Rng::new(seed)),
        };
        for (path, ops) in files {
            report.files += 1;
            report.names.push(path.strip_prefix(&self.backing).unwrap_or(&path).display().to_string());
            report.unsynced += ops.iter().filter(|op| op.fate != Fate::Synced).count();
            let file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                // Unlinked by a rename over it: nothing of it is left to cut.
                Err(_) => continue,
            };
            cut_file(&file, &ops, rng.as_mut(), &mut report)
                .unwrap_or_else(|e| panic!("cannot cut {}: {e}", path.display()));
        }
        report
    }
}

/// Undoes every op of `ops` (newest first), then redoes those the cut keeps, in order.
fn cut_file(
    file: &File,
    ops: &[Pending],
    rng: Option<&mut Rng>,
    report: &mut CutReport,
) -> std::io::Result<()> {
    for op in ops.iter().rev() {
        file.write_all_at(&op.old, op.offset)?;
        file.set_len(op.old_len)?;
    }
    // Per write: how many of its bytes come back (None: all of them).
    let keep: Vec<Option<usize>> = match rng {
        None => ops.iter().map(|_| Some(0)).collect(),
        Some(rng) => {
            let len = |op: &Pending| op.new.as_ref().map_or(0, Vec::len) as u64;
            match rng.range(0, 3) {
                0 => ops.iter().map(|_| Some(0)).collect(),
                1 => {
                    let k = rng.range(0, ops.len() as u64 + 1) as usize;
                    ops.iter()
                        .enumerate()
                        .map(|(i, op)| match i.cmp(&k) {
                            std::cmp::Ordering::Less => None,
                            std::cmp::Ordering::Equal => Some(rng.range(0, len(op) + 1) as usize),
                            std::cmp::Ordering::Greater => Some(0),
                        })
                        .collect()
                }
                _ => ops
                    .iter()
                    .map(|op| match rng.range(0, 4) {
                        0 | 1 => Some(0),
                        2 => None,
                        _ => Some(rng.range(0, len(op) + 1) as usize),
                    })
                    .collect(),
            }
        }
    };
    for (op, keep) in ops.iter().zip(keep) {
        let keep = match op.fate {
            Fate::Unsynced => keep,
            Fate::Synced => None,
            Fate::Lost => Some(0),
        };
        match &op.new {
            None => file.set_len(op.new_len)?,
            Some(data) => {
                let n = keep.unwrap_or(data.len()).min(data.len());
                if n > 0 {
                    file.write_all_at(&data[..n], op.offset)?;
                }
                if op.fate != Fate::Synced {
                    match n {
                        n if n == data.len() => report.kept += 1,
                        0 => {}
                        _ => report.torn += 1,
                    }
                    report.bytes_lost += (data.len() - n) as u64;
                }
            }
        }
    }
    Ok(())
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if session.umount_and_join().is_err() {
                let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount_point).status();
            }
        }
    }
}

/// The FUSE side.
struct Served {
    inner: Arc<Mutex<Inner>>,
    /// The backing directory's own inode number (FUSE calls it 1).
    root_ino: u64,
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from(e)
}

impl Served {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        lock(&self.inner).paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn fuse_ino(&self, backing_ino: u64) -> u64 {
        if backing_ino == self.root_ino {
            INodeNo::ROOT.0
        } else {
            backing_ino
        }
    }

    /// The attributes of `path`, remembering its inode's path.
    fn attr(&self, path: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(path).map_err(errno)?;
        let ino = self.fuse_ino(m.ino());
        lock(&self.inner).paths.insert(ino, path.to_path_buf());
        let time = |secs: i64, nanos: i64| {
            UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
        };
        let kind = if m.is_dir() {
            FileType::Directory
        } else if m.file_type().is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: m.size(),
            blocks: m.blocks(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: time(m.ctime(), m.ctime_nsec()),
            kind,
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: m.blksize() as u32,
            flags: 0,
        })
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// Forgets the unsynced writes of the file at `path` if this removes its last name.
    fn forget_if_last_link(&self, path: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.is_file() && m.nlink() <= 1 {
                let ino = self.fuse_ino(m.ino());
                let mut inner = lock(&self.inner);
                inner.pending.remove(&ino);
                inner.paths.remove(&ino);
            }
        }
    }

    fn open_handle(&self, ino: u64, file: File) -> u64 {
        let mut inner = lock(&self.inner);
        inner.next_handle += 1;
        let fh = inner.next_handle;
        inner.handles.insert(fh, (ino, file));
        fh
    }

    /// Truncates `file` (inode `ino`) to `size`, remembering what it cut.
    fn truncate(&self, ino: u64, file: &File, size: u64) -> Result<(), Errno> {
        let old_len = file.metadata().map_err(errno)?.len();
        let mut old = Vec::new();
        if size < old_len {
            old.resize((old_len - size) as usize, 0);
            file.read_exact_at(&mut old, size).map_err(errno)?;
        }
        file.set_len(size).map_err(errno)?;
        lock(&self.inner).pending.entry(ino).or_default().push(Pending {
            offset: size.min(old_len),
            old,
            old_len,
            new: None,
            new_len: size,
            fate: Fate::Unsynced,
        });
        Ok(())
    }
}

fn open_options(flags: i32) -> OpenOptions {
    let mut o = OpenOptions::new();
    match flags & nix::libc::O_ACCMODE {
        // The layer reads what a write replaces, so it reads write-only files too.
        nix::libc::O_WRONLY | nix::libc::O_RDWR => o.read(true).write(true),
        _ => o.read(true),
    };
    o
}

impl Filesystem for Served {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.path(ino).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = (|| {
            let path = self.path(ino)?;
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            if let Some(size) = size {
                let file = OpenOptions::new().read(true).write(true).open(&path).map_err(errno)?;
                self.truncate(ino.0, &file, size)?;
            }
            if let Some(t) = mtime {
                let t = match t {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                let file = File::options().write(true).open(&path).or_else(|_| File::open(&path));
                let _ = file.and_then(|f| f.set_modified(t));
            }
            self.attr(&path)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let result = self.child(parent, name).and_then(|p| {
            std::fs::create_dir(&p).map_err(errno)?;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & !umask & 0o7777));
            self.attr(&p)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.child(parent, name).and_then(|p| {
            self.forget_if_last_link(&p);
            std::fs::remove_file(&p).map_err(errno)
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.child(parent, name).and_then(|p| std::fs::remove_dir(&p).map_err(errno)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            if !flags.is_empty() {
                return Err(Errno::EINVAL);
            }
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            if from != to {
                self.forget_if_last_link(&to);
            }
            std::fs::rename(&from, &to).map_err(errno)?;
            // Every inode under the old path is under the new one now.
            let mut inner = lock(&self.inner);
            for p in inner.paths.values_mut() {
                if let Ok(rest) = p.strip_prefix(&from) {
                    *p = if rest.as_os_str().is_empty() { to.clone() } else { to.join(rest) };
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let result = (|| {
            let path = self.path(ino)?;
            let file = open_options(flags.0).open(&path).map_err(errno)?;
            if flags.0 & nix::libc::O_TRUNC != 0 {
                self.truncate(ino.0, &file, 0)?;
            }
            Ok(self.open_handle(ino.0, file))
        })();
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let inner = lock(&self.inner);
        let Some((_, file)) = inner.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut inner = lock(&self.inner);
        let Some((ino, file)) = inner.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let ino = *ino;
        let result = (|| {
            let old_len = file.metadata()?.len();
            let end = (offset + data.len() as u64).min(old_len);
            let mut old = vec![0; end.saturating_sub(offset) as usize];
            file.read_exact_at(&mut old, offset)?;
            file.write_all_at(data, offset)?;
            Ok::<_, std::io::Error>(Pending {
                offset,
                old,
                old_len,
                new: Some(data.to_vec()),
                new_len: 0,
                fate: Fate::Unsynced,
            })
        })();
        match result {
            Ok(p) => {
                inner.pending.entry(ino).or_default().push(p);
                inner.writes += 1;
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.inner).handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut inner = lock(&self.inner);
        if inner.failing_syncs {
            inner.failed_syncs += 1;
            for op in inner.pending.get_mut(&ino.0).into_iter().flatten() {
                if op.fate == Fate::Unsynced {
                    op.fate = Fate::Lost;
                }
            }
            return reply.error(Errno::EIO);
        }
        inner.synced(ino.0);
        inner.syncs += 1;
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let entries = match std::fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) => return reply.error(errno(e)),
        };
        let mut names: Vec<(u64, FileType, std::ffi::OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (INodeNo::ROOT.0, FileType::Directory, "..".into()),
        ];
        let mut rest: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| {
                use std::os::unix::fs::DirEntryExt;
                let kind = match e.file_type() {
                    Ok(t) if t.is_dir() => FileType::Directory,
                    Ok(t) if t.is_symlink() => FileType::Symlink,
                    _ => FileType::RegularFile,
                };
                (self.fuse_ino(e.ino()), kind, e.file_name())
            })
            .collect();
        rest.sort_by(|a, b| a.2.cmp(&b.2));
        names.extend(rest);
        for (i, (ino, kind, name)) in names.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = lock(&self.inner).paths.get(&INodeNo::ROOT.0).cloned();
        match root.map(|r| nix::sys::statvfs::statvfs(&r)) {
            Some(Ok(s)) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.block_size() as u32,
                s.name_max() as u32,
                s.fragment_size() as u32,
            ),
            _ => reply.error(Errno::EIO),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = (|| {
            let path = self.child(parent, name)?;
            let mut o = open_options(flags);
            o.write(true).mode(mode & !umask & 0o7777);
            if flags & nix::libc::O_EXCL != 0 {
                o.create_new(true);
            } else {
                o.create(true);
            }
            let file = o.open(&path).map_err(errno)?;
            let attr = self.attr(&path)?;
            if flags & nix::libc::O_TRUNC != 0 {
                self.truncate(attr.ino.0, &file, 0)?;
            }
            let fh = self.open_handle(attr.ino.0, file);
            Ok((attr, fh))
        })();
        match result {
            Ok((attr, fh)) => {
                reply.created(&TTL, &attr, Generation(0), FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(e),
        }
    }
}
