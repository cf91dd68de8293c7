//! The server's log (access lines, errors, guest stderr): lines are appended
//! to a shared buffer and written to stderr by one thread, at most
//! [`FLUSH_EVERY`] after they were logged (at once past [`FLUSH_BYTES`]), so a
//! request costs no write system call of its own. [`flush`] writes out what is
//! left (at shutdown).

use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// A logged line waits at most this long before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Buffered log beyond this is written at once.
const FLUSH_BYTES: usize = 64 << 10;
/// Beyond this (the writer is stuck), new lines are dropped and counted.
const MAX_BUFFERED: usize = 16 << 20;

struct Log {
    buf: Mutex<(Vec<u8>, u64)>,
    wake: Condvar,
}

fn global() -> &'static Log {
    static LOG: OnceLock<&'static Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static Log = Box::leak(Box::new(Log { buf: Mutex::new((Vec::new(), 0)), wake: Condvar::new() }));
        let started = std::thread::Builder::new().name("carnac-log".into()).spawn(move || loop {
            let data = {
                let guard = log.buf.lock().unwrap_or_else(|e| e.into_inner());
                let (mut guard, _) = log
                    .wake
                    .wait_timeout_while(guard, FLUSH_EVERY, |(b, _)| b.len() < FLUSH_BYTES)
                    .unwrap_or_else(|e| e.into_inner());
                take(&mut guard)
            };
            // Written without the lock held: requests never wait for stderr.
            write(&data);
        });
        if started.is_err() {
            eprintln!("cannot start the log thread: log lines are written at shutdown");
        }
        log
    })
}

/// Takes the buffered lines, with a note of any that were dropped.
fn take(buf: &mut (Vec<u8>, u64)) -> Vec<u8> {
    let mut data = std::mem::take(&mut buf.0);
    let dropped = std::mem::take(&mut buf.1);
    if dropped > 0 {
        data.extend_from_slice(format!("log: {dropped} line(s) dropped (stderr too slow)\n").as_bytes());
    }
    data
}

fn write(data: &[u8]) {
    if !data.is_empty() {
        let _ = std::io::stderr().lock().write_all(data);
    }
}

/// Appends one line (a newline is added).
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    let l = global();
    let mut guard = l.buf.lock().unwrap_or_else(|e| e.into_inner());
    if guard.0.len() > MAX_BUFFERED {
        guard.1 += 1;
        return;
    }
    let _ = guard.0.write_fmt(args);
    guard.0.push(b'\n');
    if guard.0.len() >= FLUSH_BYTES {
        l.wake.notify_one();
    }
}

/// Writes out everything logged so far.
pub fn flush() {
    let data = take(&mut global().buf.lock().unwrap_or_else(|e| e.into_inner()));
    write(&data);
}

/// `eprintln!`, through the buffered log.
macro_rules! log {
    ($($t:tt)*) => { $crate::log::line(format_args!($($t)*)) };
}
pub(crate) use log;
