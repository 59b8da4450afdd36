use cache_memoize::cache_memoize;

#[cache_memoize(ttl = "300")]
fn price(id: u64) -> u64 {
    id
}

fn main() {}
