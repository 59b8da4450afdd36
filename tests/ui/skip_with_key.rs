use cache_memoize::cache_memoize;

#[cache_memoize(key = id, skip(db))]
fn price(id: u64, db: &str) -> u64 {
    let _ = db;
    id
}

fn main() {}
