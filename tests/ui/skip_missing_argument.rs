use cache_memoize::cache_memoize;

#[cache_memoize(skip(pool))]
fn price(id: u64, db: &str) -> u64 {
    let _ = db;
    id
}

fn main() {}
