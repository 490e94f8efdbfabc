//! File-system helpers shared by journals and snapshots: private directories (0700) and files
//! (0600), since both hold users, API-key digests and sealed secrets, and directory fsync, which
//! makes a file's creation, rename or removal durable. And the low priority of threads that
//! write such files in the background (snapshots, feature logs), so reads win the CPU.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Options that create a file with mode 0600 (existing files keep their mode).
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Runs `work` on a thread of its own at the lowest priority (see [`yield_to_reads`]) and
/// answers its result: file work of a snapshot, which reads can wait for.
pub async fn in_background<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("quiver-background".into())
        .spawn(move || {
            yield_to_reads();
            let _ = done.send(work());
        })?;
    result.await.map_err(io::Error::other)
}

/// Lowers this thread's scheduling priority to the lowest (nice 19; on Linux a thread has its
/// own): when reads and background file work compete for the CPU, reads win.
pub fn yield_to_reads() {
    // SAFETY: plain system calls on the calling thread's own id.
    let result = unsafe {
        let thread_id = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, thread_id as libc::id_t, 19)
    };
    if result != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not lower a background thread's priority"
        );
    }
}
