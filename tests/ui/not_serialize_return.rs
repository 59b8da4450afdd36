use cache_memoize::cache_memoize;

struct Price(u64);

#[cache_memoize(ttl = 60)]
async fn price(id: u64) -> Price {
    Price(id)
}

fn main() {}
