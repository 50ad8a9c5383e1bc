//! Giving freed memory back to the operating system after a large reply.
//!
//! Building a large reply (`get_all_records` of 100,000 tasks is ~150 MB of XML plus the
//! value tree behind it) leaves the allocator with hundreds of MB of free, fragmented
//! heap. glibc keeps it (the process's RSS stays at its peak) unless asked with
//! `malloc_trim`, which releases every whole free page. We ask after replies larger than
//! [`TRIM_ABOVE`], on the blocking pool (a trim of a large heap takes milliseconds).

/// Replies at least this large are followed by a trim.
pub const TRIM_ABOVE: usize = 8 << 20;

/// Returns free heap pages to the OS (glibc only; a no-op elsewhere).
pub fn after_large_reply(len: usize) {
    if len < TRIM_ABOVE {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Fire and forget: nobody needs to wait for the trim.
        drop(tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim only walks and releases the allocator's own free lists;
            // it has no preconditions and is thread-safe.
            unsafe {
                libc::malloc_trim(0);
            }
        }));
    }
}
