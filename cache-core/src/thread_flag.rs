//! A thread-local yes/no that holds for a scope: [`Scoped::set`] sets it,
//! and dropping the guard puts back what it was (so scopes nest).

use std::cell::Cell;
use std::thread::LocalKey;

/// A flag declared with `thread_local! { static F: Cell<bool> = ... }`.
pub(crate) type Flag = LocalKey<Cell<bool>>;

/// Holds a flag's value until dropped.
#[must_use = "the flag is put back when the guard drops"]
pub(crate) struct Scoped {
    flag: &'static Flag,
    before: bool,
}

impl Scoped {
    pub(crate) fn set(flag: &'static Flag, value: bool) -> Self {
        Scoped {
            flag,
            before: flag.with(|f| f.replace(value)),
        }
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        self.flag.with(|f| f.set(self.before));
    }
}

/// The flag's value on this thread.
pub(crate) fn is_set(flag: &'static Flag) -> bool {
    flag.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static FLAG: Cell<bool> = const { Cell::new(false) };
    }

    #[test]
    fn scopes_nest_and_put_back_what_was_there() {
        let outer = Scoped::set(&FLAG, true);
        {
            let _inner = Scoped::set(&FLAG, false);
            assert!(!is_set(&FLAG));
        }
        assert!(is_set(&FLAG), "the outer scope's value is back");
        drop(outer);
        assert!(!is_set(&FLAG));
    }
}
