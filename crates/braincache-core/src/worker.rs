//! A background thread that is stopped and joined when its handle is dropped.

use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

/// A named background thread (a flusher, a writer, a cleaner) and how to stop it.
///
/// [`stop`](Self::stop), or dropping the handle, runs the stop action given to
/// [`spawn`](Self::spawn) (typically: send a stop message, or drop the last sender of the
/// thread's channel) and then waits for the thread to end. A panic inside the thread is not
/// propagated: the handle only stops and joins.
///
/// ```
/// use braincache_core::Worker;
/// use std::sync::mpsc;
///
/// let (tx, rx) = mpsc::channel::<u32>();
/// let (done_tx, done) = mpsc::channel();
/// let worker = Worker::spawn(
///     "example-worker",
///     move || {
///         // Runs until every sender is gone.
///         let sum: u32 = rx.iter().sum();
///         done_tx.send(sum).unwrap();
///     },
///     || {}, // nothing to do: dropping `tx` below ends the loop
/// )
/// .unwrap();
/// tx.send(2).unwrap();
/// tx.send(3).unwrap();
/// drop(tx);
/// worker.stop();
/// assert_eq!(done.recv().unwrap(), 5);
/// ```
#[must_use = "the thread is stopped when the handle is dropped"]
pub struct Worker {
    /// In a `Mutex` only so that `Worker` is `Sync` (it is only taken through `&mut self`).
    stop: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a thread named `name` running `body`; `stop` is what makes `body` return.
    ///
    /// # Errors
    /// The operating system's error when the thread cannot be started.
    pub fn spawn(
        name: &str,
        body: impl FnOnce() + Send + 'static,
        stop: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Worker> {
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(body)?;
        Ok(Worker {
            stop: Mutex::new(Some(Box::new(stop))),
            thread: Some(thread),
        })
    }

    /// True while the thread runs.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Runs the stop action and waits for the thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let stop = self
            .stop
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            stop();
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the thread was already reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn drop_runs_the_stop_action_then_joins() {
        let (tx, rx) = mpsc::channel::<()>();
        let (ended_tx, ended) = mpsc::channel();
        let w = Worker::spawn(
            "t-drop",
            move || {
                // Waits for the stop message (bounded: a broken stop fails the test).
                let got = rx.recv_timeout(Duration::from_secs(30));
                ended_tx.send(got.is_ok()).unwrap();
            },
            move || tx.send(()).unwrap(),
        )
        .unwrap();
        drop(w);
        // Joined: the thread has sent its result before the drop returned.
        assert_eq!(ended.try_recv(), Ok(true));
    }

    #[test]
    fn a_panicking_thread_is_joined_without_propagating() {
        let w = Worker::spawn("t-panic", || panic!("expected in this test"), || {}).unwrap();
        w.stop();
    }
}
