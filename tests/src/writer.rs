//! A writer that keeps putting keys into etcd through a drill, and what its attempts show:
//! every acknowledged write must be readable afterwards; the longest gap is the drill's
//! unavailability.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::etcd_cluster::Etcdctl;

/// One `etcdctl put /drill/<n> <n>` of the writer.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub n: u64,
    /// When etcdctl returned.
    pub done: Instant,
    pub acked: bool,
    pub error: String,
}

/// A thread that keeps writing through the drill; stopped (and joined) on drop too.
pub struct Writer {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(ctl: Etcdctl) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let handle = {
            let (stop, attempts) = (stop.clone(), attempts.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let o = ctl.run(&["put", &format!("/drill/{n}"), &n.to_string()]);
                    let error = String::from_utf8_lossy(&o.stderr).trim().to_string();
                    attempts.lock().unwrap().push(Attempt {
                        n,
                        done: Instant::now(),
                        acked: o.status.success(),
                        error,
                    });
                    n += 1;
                    std::thread::sleep(Duration::from_millis(60));
                }
            })
        };
        Writer {
            stop,
            attempts,
            handle: Some(handle),
        }
    }

    pub fn acked(&self) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.acked)
            .count()
    }

    /// Stops the thread; returns every attempt and the moment it stopped.
    pub fn finish(mut self) -> (Vec<Attempt>, Instant) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("writer thread");
        }
        let stopped = Instant::now();
        (self.attempts.lock().unwrap().clone(), stopped)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The longest gap between consecutive acknowledged writes that ends after `from` (a gap that
/// straddles `from` counts whole); the writer's stop closes the last gap, so failures at the
/// very end are not hidden.
pub fn error_window(attempts: &[Attempt], from: Instant, stopped: Instant) -> Duration {
    let mut marks: Vec<Instant> = attempts
        .iter()
        .filter(|a| a.acked)
        .map(|a| a.done)
        .collect();
    marks.sort();
    marks.push(stopped);
    marks
        .windows(2)
        .filter(|w| w[1] >= from)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}
