use cache_memoize::cache_memoize;

#[cache_memoize(stale_if_error = 60)]
async fn price(id: u64) -> u64 {
    id
}

fn main() {}
