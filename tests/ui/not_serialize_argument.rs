use cache_memoize::cache_memoize;

struct Connection;

#[cache_memoize(ttl = 60)]
fn price(id: u64, conn: &Connection) -> u64 {
    let _ = conn;
    id
}

fn main() {}
