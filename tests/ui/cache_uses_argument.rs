use cache_memoize::{cache_memoize, Cache};

#[cache_memoize(cache = shop)]
fn price(id: u64, shop: &Cache) -> u64 {
    let _ = shop;
    id
}

fn main() {}
