use cache_memoize::cache_memoize;

#[cache_memoize]
const fn price(id: u64) -> u64 {
    id
}

fn main() {}
