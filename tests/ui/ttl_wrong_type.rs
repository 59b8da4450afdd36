use cache_memoize::cache_memoize;

const FIVE_MINUTES: u64 = 300;

#[cache_memoize(ttl = FIVE_MINUTES)]
fn price(id: u64) -> u64 {
    id
}

fn main() {}
