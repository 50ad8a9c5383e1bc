//! Giving freed memory back to the operating system after large replies.
//!
//! Building a large reply (`get_all_records` of 100,000 tasks is ~150 MB of XML plus the
//! value tree behind it) leaves the allocator with hundreds of MB of free, fragmented
//! heap. glibc keeps it (the process's RSS stays at its peak) unless asked with
//! `malloc_trim`, which releases every whole free page. We ask once things are quiet:
//! [`DELAY`] after a reply larger than [`TRIM_ABOVE`], on the blocking pool, one trim at
//! a time (a burst of large replies is not slowed by trims between them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Replies at least this large are followed by a trim.
pub const TRIM_ABOVE: usize = 8 << 20;

/// How long after a large reply the trim runs.
pub const DELAY: Duration = Duration::from_secs(1);

static PENDING: AtomicBool = AtomicBool::new(false);

/// Schedules a trim after a reply of `len` bytes (glibc only; a no-op elsewhere).
pub fn after_large_reply(len: usize) {
    if len < TRIM_ABOVE || PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    drop(tokio::spawn(async {
        tokio::time::sleep(DELAY).await;
        PENDING.store(false, Ordering::Release);
        // Fire and forget: nobody waits for the trim.
        drop(tokio::task::spawn_blocking(trim));
    }));
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free lists; it has
    // no preconditions and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
