use cache_memoize::cache_memoize;

#[cache_memoize(cache_errors)]
fn price(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
