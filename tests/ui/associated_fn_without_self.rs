use cache_memoize::cache_memoize;

struct Catalog;

// The attribute sees only the function, not the `impl` around it: without
// `self` or `Self` (`-> Self`, `Self::helper()`) it takes this for a free fn
// and calls the body fn it generated without `Self::`.
impl Catalog {
    #[cache_memoize]
    fn size(shelf: u32) -> u32 {
        shelf * 10
    }
}

fn main() {}
