use cache_memoize::cache_memoize;

#[cache_memoize(crate = "cache memoize")]
fn price(id: u64) -> u64 {
    id
}

fn main() {}
