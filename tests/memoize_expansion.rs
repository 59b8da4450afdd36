//! What the expansion of `#[cache_memoize]` guarantees, whatever the shape of
//! the function: the body is compiled once (so a `static` inside it is one
//! static, shared by `foo` and `foo_refresh`).
//!
//! These tests need no Redis: without `alias` or `cache` a memoized function
//! uses the default cache, in memory until one is set (this binary never
//! sets one). Every function has its own prefix, so tests run in parallel.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_memoize::cache_memoize;

fn bump(counter: &AtomicUsize) -> usize {
    counter.fetch_add(1, Ordering::SeqCst) + 1
}

// --- one body: a `static` in it is shared by `foo` and `foo_refresh` --------

#[cache_memoize]
fn counted(n: u32) -> usize {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let _ = n;
    bump(&CALLS)
}

#[test]
fn a_static_in_a_plain_fn_is_shared_with_its_refresh() {
    assert_eq!(counted(1), 1);
    assert_eq!(counted(1), 1, "a hit");
    assert_eq!(counted_refresh(1), 2, "the refresh runs the same body");
    assert_eq!(counted(1), 2, "and stores its result");
}

#[cache_memoize]
async fn counted_async(n: u32) -> usize {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let _ = n;
    tokio::task::yield_now().await;
    bump(&CALLS)
}

#[tokio::test]
async fn a_static_in_an_async_fn_is_shared_with_its_refresh() {
    assert_eq!(counted_async(1).await, 1);
    assert_eq!(counted_async_refresh(1).await, 2);
    assert_eq!(counted_async(1).await, 2);
}

struct Counter {
    step: usize,
}

impl Counter {
    #[cache_memoize(prefix = "expansion::Counter::next")]
    async fn next(&self, label: &str) -> usize {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let _ = label;
        CALLS.fetch_add(self.step, Ordering::SeqCst) + self.step
    }

    #[cache_memoize(prefix = "expansion::Counter::next_blocking")]
    fn next_blocking(&self, label: &str) -> usize {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let _ = label;
        CALLS.fetch_add(self.step, Ordering::SeqCst) + self.step
    }
}

#[tokio::test]
async fn a_static_in_a_method_is_shared_with_its_refresh() {
    let counter = Counter { step: 10 };
    assert_eq!(counter.next("a").await, 10);
    assert_eq!(counter.next_refresh("a").await, 20);
    assert_eq!(counter.next("a").await, 20);

    let counter = Counter { step: 3 };
    assert_eq!(counter.next_blocking("a"), 3);
    assert_eq!(counter.next_blocking_refresh("a"), 6);
    assert_eq!(counter.next_blocking("a"), 6);
}

// --- every shape of function compiles and runs through one body -------------

#[cache_memoize]
fn generic_with_lifetime<'a, T: serde::Serialize + std::fmt::Debug, const N: usize>(
    label: &'a str,
    unit: &'a str,
    values: Vec<T>,
) -> String {
    format!("{label} {N}: {values:?} {unit}")
}

#[cache_memoize]
fn mutable_argument(mut n: u32) -> u32 {
    n += 1;
    n
}

#[cache_memoize(ttl = 60, early_refresh, stale_while_revalidate = 5)]
async fn refreshing_in_the_background(n: u32) -> u32 {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    CALLS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Shelf {
    items: Vec<u32>,
}

impl Shelf {
    // Without `self`, the attribute tells an associated fn from a free fn
    // by a `Self` in its signature or body.
    #[cache_memoize]
    fn with_items(count: u32) -> Vec<u32> {
        Self::fill(count)
    }

    #[cache_memoize]
    fn new(count: u32) -> Self {
        Shelf {
            items: (0..count).collect(),
        }
    }

    fn fill(count: u32) -> Vec<u32> {
        (0..count).collect()
    }

    #[cache_memoize(key = self.items.len())]
    fn consume(mut self, extra: u32) -> usize {
        self.items.push(extra);
        self.items.len()
    }

    #[cache_memoize(key = (self.items.len(), n))]
    fn grow(&mut self, n: u32) -> usize {
        self.items.push(n);
        self.items.len()
    }

    #[cache_memoize(key = n)]
    async fn grow_async(&mut self, n: u32) -> usize {
        tokio::task::yield_now().await;
        self.items.push(n);
        self.items.len()
    }
}

#[tokio::test]
async fn every_shape_runs_its_body() {
    // An item inside a block: its body fn is a sibling in the same block.
    #[cache_memoize]
    fn local(n: u32) -> u32 {
        n + 100
    }
    assert_eq!(local(1), 101);
    assert_eq!(local_refresh(1), 101);

    assert_eq!(
        generic_with_lifetime::<u8, 2>("a", "kg", vec![1]),
        "a 2: [1] kg"
    );
    assert_ne!(
        generic_with_lifetime_cache_key::<u8, 2>("a", "kg", vec![1]),
        generic_with_lifetime_cache_key::<u8, 3>("a", "kg", vec![1]),
    );
    assert_eq!(
        generic_with_lifetime_refresh::<u8, 1>("b", "g", vec![3]),
        "b 1: [3] g"
    );

    assert_eq!(mutable_argument(1), 2);
    assert_eq!(mutable_argument_refresh(1), 2);

    assert_eq!(refreshing_in_the_background(2).await, 4);
    assert_eq!(refreshing_in_the_background_refresh(2).await, 4);

    assert_eq!(Shelf::with_items(3), [0, 1, 2]);
    assert_eq!(Shelf::with_items_refresh(2), [0, 1]);
    assert_eq!(Shelf::new(1), Shelf::new_refresh(1));

    let shelf = Shelf { items: vec![1] };
    assert_eq!(shelf.clone().consume(7), 2);
    assert_eq!(shelf.clone().consume_refresh(7), 2);

    let mut shelf = Shelf { items: vec![] };
    assert_eq!(shelf.grow(1), 1);
    assert_eq!(shelf.grow_refresh(1), 2);
    assert_eq!(shelf.grow_async(5).await, 3);
    assert_eq!(shelf.grow_async(5).await, 3, "a hit");
    assert_eq!(shelf.grow_async_refresh(5).await, 4);
}

// --- `crate = path`: a renamed or re-exported cache-memoize ------------------

mod renamed {
    use cache_memoize as memo;

    #[memo::cache_memoize(crate = memo, ttl = 60, tags = ["renamed"])]
    pub fn doubled(n: u32) -> u32 {
        n * 2
    }

    /// Re-exported from a module of the user's crate.
    pub mod reexport {
        pub use cache_memoize as memo;
    }

    #[cache_memoize::cache_memoize(crate = crate::renamed::reexport::memo, early_refresh)]
    pub async fn tripled(n: u32) -> Option<u32> {
        n.checked_mul(3)
    }

    // serde's and tokio's form: the path in a string.
    #[memo::cache_memoize(crate = "memo", cache_none = false)]
    pub fn halved(n: u32) -> Option<u32> {
        n.is_multiple_of(2).then_some(n / 2)
    }
}

#[tokio::test]
async fn crate_names_a_renamed_dependency() {
    assert_eq!(renamed::doubled(2), 4);
    assert_eq!(renamed::doubled_refresh(2), 4);
    assert!(renamed::doubled_invalidate(2));
    assert_eq!(renamed::tripled(2).await, Some(6));
    assert_eq!(renamed::tripled_invalidate_all().await, 1);
    assert_eq!(renamed::halved(4), Some(2));
    assert!(renamed::halved_cache_key(4).contains("renamed::halved"));
}
