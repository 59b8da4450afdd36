use cache_memoize::cache_memoize;

#[cache_memoize(cache_none = false)]
fn price(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
