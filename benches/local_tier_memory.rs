//! Memory of the local tier: 1,000,000 distinct keys of SMALL values (30
//! three-letter strings) go through a tier with a 32 MiB budget; the
//! process's resident memory is read before and after, against a baseline
//! in the same run: the same calls on the same Redis without a tier. The
//! live heap (counted by `stats_alloc`'s allocator wrapper) is printed beside it:
//! RSS minus heap is what the allocator keeps (fragmentation, arenas).
//! `local_tier_memory_mimalloc` runs the same under mimalloc.
//!
//! ```text
//! cargo bench --bench local_tier_memory
//! ```
//!
//! Under `cargo test` it runs 2,000 keys as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/fixtures.rs"]
mod fixtures;

#[path = "local_tier_memory/measure.rs"]
mod measure;

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

/// The system allocator (glibc malloc), counting the bytes allocated and
/// freed.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed.
fn heap() -> u64 {
    let stats = ALLOCATOR.stats();
    // Reallocations are counted in both (their growth or shrinkage).
    stats
        .bytes_allocated
        .saturating_sub(stats.bytes_deallocated) as u64
}

#[tokio::main]
async fn main() {
    measure::main("the system allocator (glibc malloc)", Some(heap)).await;
}
