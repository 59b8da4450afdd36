//! How a memoized function's values go into the local tier and come out:
//! a value is kept as a type-erased box and each hit clones it out, so the
//! tier holds only types that are `Clone + Send + Sync + 'static`. The
//! attribute finds out which (by autoref specialization on the concrete
//! return type): other types, and types still generic, skip the tier.

use std::any::Any;
use std::marker::PhantomData;

/// Puts a value in the local tier and clones one out of it.
pub struct LocalValue<S> {
    pub(crate) put: fn(&S) -> Box<dyn Any + Send + Sync>,
    pub(crate) take: fn(&(dyn Any + Send + Sync)) -> Option<S>,
}

impl<S> Clone for LocalValue<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for LocalValue<S> {}

impl<S> std::fmt::Debug for LocalValue<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalValue")
    }
}

impl<S: Clone + Send + Sync + 'static> LocalValue<S> {
    /// Values kept as they are and cloned on each hit (an `Arc<T>` hit
    /// clones the `Arc`, not the `T`).
    ///
    /// ```
    /// use cache_core::memoized::{LocalValue, Policy};
    /// let policy = Policy::<Vec<String>, _>::always().local(Some(LocalValue::cloned()));
    /// # drop(policy);
    /// ```
    pub fn cloned() -> Self {
        LocalValue {
            put: |value| Box::new(value.clone()),
            take: |value| value.downcast_ref::<S>().cloned(),
        }
    }
}

/// Finds out, for a policy's concrete stored type, whether its values can
/// be kept in the local tier: `(&&LocalProbe::of(&policy)).local_value()`
/// with [`LocalByClone`] and [`LocalNever`] in scope.
/// (`LocalProbe::of` is next to `Policy`, in `memoized`.)
pub struct LocalProbe<S>(pub(crate) PhantomData<fn() -> S>);

/// Chosen for types that are `Clone + Send + Sync + 'static`.
pub trait LocalByClone<S> {
    /// How values go in and out of the local tier.
    fn local_value(&self) -> Option<LocalValue<S>>;
}

impl<S: Clone + Send + Sync + 'static> LocalByClone<S> for &LocalProbe<S> {
    fn local_value(&self) -> Option<LocalValue<S>> {
        Some(LocalValue::cloned())
    }
}

/// Chosen for every other type: not kept in the local tier.
pub trait LocalNever<S> {
    /// `None`.
    fn local_value(&self) -> Option<LocalValue<S>>;
}

impl<S> LocalNever<S> for LocalProbe<S> {
    fn local_value(&self) -> Option<LocalValue<S>> {
        None
    }
}

#[cfg(test)]
// The tests write the probe as the expansion does, `(&&probe)`, for every
// type: that the borrows are needless for some types is the point.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;
    use crate::memoized::Policy;

    struct NotClone;

    #[allow(unused_imports)]
    fn probe<S>(policy: &Policy<S, S>) -> bool {
        use super::{LocalByClone as _, LocalNever as _};
        (&&LocalProbe::of(policy)).local_value().is_some()
    }

    #[test]
    fn clone_types_are_kept_and_others_are_not() {
        use super::{LocalByClone as _, LocalNever as _};
        let policy = Policy::<Vec<String>, _>::always();
        assert!((&&LocalProbe::of(&policy)).local_value().is_some());
        let policy = Policy::<Result<u64, std::io::Error>, _>::ok();
        assert!((&&LocalProbe::of(&policy)).local_value().is_some());
        // Not `Sync`.
        let policy = Policy::<std::cell::Cell<u8>, _>::always();
        assert!((&&LocalProbe::of(&policy)).local_value().is_none());
        let _ = NotClone;
        // Still generic: never kept.
        assert!(!probe(&Policy::<u64, _>::always()));
    }

    #[test]
    fn a_value_comes_back_as_its_own_type_only() {
        let local = LocalValue::<u64>::cloned();
        let boxed = (local.put)(&7);
        assert_eq!((local.take)(&*boxed), Some(7));
        assert_eq!((LocalValue::<u32>::cloned().take)(&*boxed), None);
    }
}
