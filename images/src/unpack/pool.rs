//! A pool of threads that create regular files and symbolic links while the
//! reading thread goes on decompressing and parsing the tar.
//!
//! Creating a file costs far more kernel time than reading its tar entry,
//! and file creations in different directories proceed in parallel, so the
//! pool overlaps them. The reading thread decides what may run out of tar
//! order: it only submits entries whose name no earlier entry of the layer
//! used, and it calls [`Pool::wait_idle`] before anything that depends on
//! submitted work being done.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::Scope;

use super::create;
use super::metadata::Metadata;
use super::UnpackError;

/// Maximum number of submitted jobs not yet done.
const MAX_JOBS: usize = 256;

/// Maximum file data held by submitted jobs not yet done, in bytes. A
/// single job larger than this still runs, alone.
const MAX_BYTES: usize = 64 << 20;

/// One entry to create in its already open parent directory.
pub(crate) enum Job {
    File {
        dir: Arc<OwnedFd>,
        name: OsString,
        display: String,
        metadata: Metadata,
        data: Vec<u8>,
    },
    Symlink {
        dir: Arc<OwnedFd>,
        name: OsString,
        display: String,
        metadata: Metadata,
        target: OsString,
    },
}

impl Job {
    fn run(&self) -> Result<(), UnpackError> {
        // The name is new in this layer, so nothing is replaced.
        match self {
            Self::File {
                dir,
                name,
                display,
                metadata,
                data,
            } => {
                let (mut file, _) = create::open_new_file(dir.as_fd(), name, display)?;
                file.write_all(data)
                    .map_err(|e| UnpackError::entry(display, "write", e))?;
                create::finish_file(&file, metadata, display)
            }
            Self::Symlink {
                dir,
                name,
                display,
                metadata,
                target,
            } => create::symlink(dir.as_fd(), name, target, metadata, display).map(|_| ()),
        }
    }

    fn size(&self) -> usize {
        match self {
            Self::File { data, .. } => data.len(),
            Self::Symlink { .. } => 0,
        }
    }
}

/// Jobs in flight and the first error, shared by the reading thread and
/// the workers.
pub(crate) struct Shared {
    receiver: Mutex<Receiver<Job>>,
    state: Mutex<State>,
    changed: Condvar,
    failed: AtomicBool,
}

#[derive(Default)]
struct State {
    jobs: usize,
    bytes: usize,
    error: Option<UnpackError>,
}

impl Shared {
    /// Returns the shared state and the sender of its job channel.
    pub fn new() -> (Self, Sender<Job>) {
        let (sender, receiver) = mpsc::channel();
        let shared = Self {
            receiver: Mutex::new(receiver),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            failed: AtomicBool::new(false),
        };
        (shared, sender)
    }

    /// Takes the first error a worker returned, if any.
    pub fn take_error(&self) -> Option<UnpackError> {
        self.lock().error.take()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("an unpack worker panicked")
    }

    /// Runs jobs until the channel closes. After the first error, jobs are
    /// dropped without running so that the reading thread can stop.
    fn work(&self) {
        loop {
            let received = self
                .receiver
                .lock()
                .expect("an unpack worker panicked")
                .recv();
            let Ok(job) = received else { return };
            let result = if self.failed.load(Ordering::Relaxed) {
                Ok(())
            } else {
                job.run()
            };
            let mut state = self.lock();
            state.jobs -= 1;
            state.bytes -= job.size();
            if let Err(error) = result {
                self.failed.store(true, Ordering::Relaxed);
                state.error.get_or_insert(error);
            }
            drop(state);
            self.changed.notify_all();
        }
    }
}

/// The reading thread's handle on the workers. With no workers, jobs run
/// on the reading thread when submitted, in tar order.
pub(crate) struct Pool<'a> {
    shared: &'a Shared,
    sender: Option<Sender<Job>>,
}

impl<'a> Pool<'a> {
    /// Starts `workers` threads in `scope`; they end when the pool is
    /// dropped and the jobs already submitted are done.
    pub fn start<'scope>(
        scope: &'scope Scope<'scope, '_>,
        shared: &'a Shared,
        sender: Sender<Job>,
        workers: usize,
    ) -> Self
    where
        'a: 'scope,
    {
        for _ in 0..workers {
            scope.spawn(|| shared.work());
        }
        let sender = (workers > 0).then_some(sender);
        Self { shared, sender }
    }

    /// Hands `job` to a worker, first waiting while the jobs in flight are
    /// at their limits. Returns a worker's error instead if one failed.
    pub fn submit(&self, job: Job) -> Result<(), UnpackError> {
        let Some(sender) = &self.sender else {
            return job.run();
        };
        let size = job.size();
        let mut state = self.shared.lock();
        loop {
            if let Some(error) = state.error.take() {
                return Err(error);
            }
            let room =
                state.jobs < MAX_JOBS && (state.jobs == 0 || state.bytes + size <= MAX_BYTES);
            if room {
                break;
            }
            state = self
                .shared
                .changed
                .wait(state)
                .expect("an unpack worker panicked");
        }
        state.jobs += 1;
        state.bytes += size;
        drop(state);
        sender
            .send(job)
            .expect("unpack workers run until the pool is dropped");
        Ok(())
    }

    /// Waits until every submitted job is done. Returns a worker's error if
    /// one failed.
    pub fn wait_idle(&self) -> Result<(), UnpackError> {
        let mut state = self.shared.lock();
        loop {
            if let Some(error) = state.error.take() {
                return Err(error);
            }
            if state.jobs == 0 {
                return Ok(());
            }
            state = self
                .shared
                .changed
                .wait(state)
                .expect("an unpack worker panicked");
        }
    }
}
