use cache_memoize::cache_memoize;

#[cache_memoize(timeout = 300)]
fn price(id: u64) -> u64 {
    id
}

#[cache_memoize(ttl = 300, colour = "blue")]
fn stock(id: u64) -> u64 {
    id
}

fn main() {}
