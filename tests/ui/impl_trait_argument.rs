use cache_memoize::cache_memoize;

#[cache_memoize]
fn describe(value: impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

fn main() {}
