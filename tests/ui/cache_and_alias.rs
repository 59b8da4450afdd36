use cache_memoize::{cache_memoize, Cache};

fn shop_cache() -> Cache {
    Cache::memory()
}

#[cache_memoize(cache = shop_cache(), alias = "sessions")]
fn price(id: u64) -> u64 {
    id
}

fn main() {}
