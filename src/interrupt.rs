//! What a run undoes when SIGINT or SIGTERM stops it: the local store's temp files and the
//! multipart uploads in flight, which would otherwise stay forever (the uploads billed as storage),
//! and the leases it holds (the deploy lock, a staging claim), which would hold up the next run.
//!
//! Work that leaves something behind until it finishes registers how to undo it with [`CLEANUP`];
//! [`until_signal`] runs a command and, on a signal, drops it (and every request in flight with
//! it) and runs what is registered. A run killed outright (SIGKILL) undoes nothing: the local store
//! sweeps stale temp files, and the bucket's lifecycle rule aborts incomplete uploads.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::signal::unix::{SignalKind, signal};

/// Exit code after SIGINT: 128 + 2, as a shell reports a process the signal ended.
pub const EXIT_SIGINT: u8 = 130;
/// Exit code after SIGTERM: 128 + 15.
pub const EXIT_SIGTERM: u8 = 143;

/// How long undoing may take before the run exits anyway (a second signal also cuts it short).
const UNDO_LIMIT: Duration = Duration::from_secs(30);

/// The run's registry; every store registers here.
pub static CLEANUP: Cleanup = Cleanup::new();

/// A way to undo one piece of unfinished work.
enum Undo {
    TempFile(PathBuf),
    Task(Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>),
}

struct State {
    stopping: bool,
    next: u64,
    pending: BTreeMap<u64, Undo>,
}

/// Unfinished work and how to undo it, until a signal stops the run.
pub struct Cleanup {
    state: Mutex<State>,
}

/// What a stop undid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Undone {
    pub temp_files: usize,
    pub tasks: usize,
}

impl Cleanup {
    const fn new() -> Self {
        Self { state: Mutex::new(State { stopping: false, next: 0, pending: BTreeMap::new() }) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&'static self, state: &mut State, undo: Undo) -> Registered {
        let id = state.next;
        state.next += 1;
        state.pending.insert(id, undo);
        Registered { cleanup: self, id }
    }

    /// Creates the temp file `path` (which must not exist) and registers it, atomically with
    /// respect to [`Cleanup::stop`]: once the run is stopping, no temp file is created.
    pub fn temp_file(&'static self, path: PathBuf) -> io::Result<(File, TempFile)> {
        let mut state = self.state();
        if state.stopping {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "the run is stopping on a signal"));
        }
        let file = File::create_new(&path)?;
        let registered = self.register(&mut state, Undo::TempFile(path.clone()));
        Ok((file, TempFile { path, _registered: registered }))
    }

    /// Registers `undo`, run if the run stops before the returned guard is dropped.
    pub fn on_stop(&'static self, undo: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static) -> Registered {
        self.register(&mut self.state(), Undo::Task(Box::new(undo)))
    }

    /// Marks the run as stopping and takes what is registered; nothing registers after this.
    fn take(&self) -> Vec<Undo> {
        let mut state = self.state();
        state.stopping = true;
        std::mem::take(&mut state.pending).into_values().collect()
    }

    /// Undoes what is registered: removes the temp files, then runs the undo tasks together.
    async fn undo(pending: Vec<Undo>) -> Undone {
        let mut undone = Undone::default();
        let mut tasks = Vec::new();
        for undo in pending {
            match undo {
                Undo::TempFile(path) => undone.temp_files += usize::from(fs::remove_file(&path).is_ok()),
                Undo::Task(task) => tasks.push(task()),
            }
        }
        undone.tasks = tasks.len();
        futures::future::join_all(tasks).await;
        undone
    }
}

/// A registration, forgotten when dropped: the work it undoes finished or failed on its own.
pub struct Registered {
    cleanup: &'static Cleanup,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.cleanup.state().pending.remove(&self.id);
    }
}

/// A temp file being written; removed when dropped unless it was renamed into place first.
pub struct TempFile {
    path: PathBuf,
    _registered: Registered,
}

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Runs `work` (a command, to its exit code) unless SIGINT or SIGTERM comes first; then `work` is
/// dropped with every request in flight, what [`CLEANUP`] holds is undone, and the exit code is
/// 128 + the signal's number.
pub async fn until_signal(work: impl Future<Output = u8>) -> u8 {
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        crate::say!("warning: signal handlers could not be installed; a signal will leave temp files and uploads");
        return work.await;
    };
    let mut work = Box::pin(work);
    let (name, code) = tokio::select! {
        code = &mut work => return code,
        _ = interrupt.recv() => ("SIGINT", EXIT_SIGINT),
        _ = terminate.recv() => ("SIGTERM", EXIT_SIGTERM),
    };
    crate::say!("stopped by {name}: cleaning up");
    // Taken before `work` is dropped, so guards dropped with it cannot unregister what must be undone.
    let pending = CLEANUP.take();
    drop(work);
    tokio::select! {
        undone = tokio::time::timeout(UNDO_LIMIT, Cleanup::undo(pending)) => match undone {
            Ok(undone) => crate::say!(
                "removed {} temp files and undid {} unfinished writes (multipart uploads, leases)",
                undone.temp_files, undone.tasks
            ),
            Err(_) => crate::say!("cleaning up took over {}s; stopping anyway", UNDO_LIMIT.as_secs()),
        },
        _ = interrupt.recv() => crate::say!("stopped again: cleanup cut short"),
        _ = terminate.recv() => crate::say!("stopped again: cleanup cut short"),
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_removes_the_temp_files_and_runs_the_tasks_still_registered() {
        static RUN: Cleanup = Cleanup::new();
        let dir = tempfile::tempdir().unwrap();
        let (_, kept) = RUN.temp_file(dir.path().join("in-flight")).unwrap();
        let (_, finished) = RUN.temp_file(dir.path().join("renamed")).unwrap();
        fs::rename(finished.path(), dir.path().join("placed")).unwrap();
        drop(finished);
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = |ran: std::sync::Arc<std::sync::atomic::AtomicUsize>| {
            move || -> BoxFuture<'static, ()> {
                Box::pin(async move {
                    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
            }
        };
        let _pending = RUN.on_stop(task(ran.clone()));
        drop(RUN.on_stop(task(ran.clone())));

        let undone = Cleanup::undo(RUN.take()).await;
        assert_eq!(undone, Undone { temp_files: 1, tasks: 1 });
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1, "only the task still registered runs");
        assert!(!kept.path().exists());
        assert!(dir.path().join("placed").exists(), "a file renamed into place stays");
        let refused = RUN.temp_file(dir.path().join("late")).err().expect("no temp file once stopping");
        assert_eq!(refused.kind(), io::ErrorKind::Interrupted);
        assert!(!dir.path().join("late").exists());
    }

    #[test]
    fn a_dropped_temp_file_is_removed() {
        static RUN: Cleanup = Cleanup::new();
        let dir = tempfile::tempdir().unwrap();
        let (_, temp) = RUN.temp_file(dir.path().join("t")).unwrap();
        assert!(dir.path().join("t").exists());
        drop(temp);
        assert!(!dir.path().join("t").exists());
        assert!(RUN.state().pending.is_empty());
    }
}
