//! How the process allocator gives memory back. glibc serves a freed block over its mmap
//! threshold back to the system, but raises that threshold to the size of every such block
//! freed, so after a few 19 MiB password hashes (or large uploads) every later one comes from
//! the heap and stays resident when freed: a login flood left 350 MB behind (benches/flood.sh).
//! A fixed threshold keeps blocks of 1 MiB and more mapped on their own, returned on free.

/// Blocks this large or larger are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const LARGE_BLOCK: i32 = 1024 * 1024;

/// Called once at start, before other threads allocate.
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK);
    }
}
