//! Which results of a memoized call are stored.
//!
//! A memoized call returns `R` and stores an `S` taken from it. These are
//! the policies the `#[cache_memoize]` options map to.

/// Extracts the value to store from a call's result; `None` means "do not
/// store this one".
pub type StorePolicy<R, S> = for<'a> fn(&'a R) -> Option<&'a S>;

/// Store every result (the default).
pub fn always<T>(value: &T) -> Option<&T> {
    Some(value)
}

/// Store the `Ok` value of a `Result`; errors are returned, not cached.
pub fn ok<T, E>(result: &Result<T, E>) -> Option<&T> {
    result.as_ref().ok()
}

/// Store `Some`, not `None` (`cache_none = false`).
pub fn some<T>(option: &Option<T>) -> Option<&Option<T>> {
    option.as_ref().map(|_| option)
}
