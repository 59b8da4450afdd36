use cache_memoize::cache_memoize;

#[cache_memoize(ttl = 60, early_refresh = -1.0)]
async fn price(id: u64) -> u64 {
    id
}

fn main() {}
