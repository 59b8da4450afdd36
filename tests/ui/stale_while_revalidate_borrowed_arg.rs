use cache_memoize::cache_memoize;

#[cache_memoize(ttl = 60, stale_while_revalidate = 30)]
async fn price(currency: &str) -> u64 {
    currency.len() as u64
}

fn main() {}
