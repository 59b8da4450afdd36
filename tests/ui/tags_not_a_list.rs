use cache_memoize::cache_memoize;

#[cache_memoize(ttl = 60, tags = "user")]
async fn price(id: u64) -> u64 {
    id
}

fn main() {}
