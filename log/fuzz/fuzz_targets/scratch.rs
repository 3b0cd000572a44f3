//! Scratch directories for the targets that write files (shared as a module, like
//! `fix_crc`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where they go: `$SLUICE_FUZZ_SCRATCH` (`.ci/fuzz` makes one and removes it afterwards,
/// crash or not), else tmpfs where there is one (recovery fsyncs, and on tmpfs that costs
/// nothing), else the system's temporary directory.
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SLUICE_FUZZ_SCRATCH") {
            return PathBuf::from(dir);
        }
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    })
}

/// A new empty directory under the scratch root, removed when dropped.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("sluice-fuzz-").tempdir_in(scratch_root()).expect("scratch directory")
}
