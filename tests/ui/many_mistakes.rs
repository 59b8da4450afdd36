use cache_memoize::cache_memoize;

// Every mistake is reported in one compile, not one at a time.
#[cache_memoize(ttl = "soon", skip(nothing), cache_none = false, locking = true)]
fn price(id: u64) -> u64 {
    id
}

fn main() {}
