//! `local_tier_memory` under mimalloc: the same 1,000,000 keys through a
//! 32 MiB tier, RSS against the no-tier baseline. glibc's malloc keeps the
//! holes that evicted values leave (RSS about 1.6x the budget while the
//! live heap is 0.7x); an allocator with size classes reuses them.
//!
//! ```text
//! cargo bench --bench local_tier_memory_mimalloc
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/fixtures.rs"]
mod fixtures;

#[path = "local_tier_memory/measure.rs"]
mod measure;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    measure::main("mimalloc", None).await;
}
