use cache_memoize::cache_memoize;

#[cache_memoize(cache_errors = true)]
fn price(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
