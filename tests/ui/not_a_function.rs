use cache_memoize::cache_memoize;

#[cache_memoize(ttl = 60)]
struct Price(u64);

fn main() {}
