//! Compile errors of `#[cache_memoize]`: one file per mistake a user can
//! make, each with the exact message they see (`tests/ui/*.stderr`).
//! Regenerate with `TRYBUILD=overwrite cargo test --test ui` and read every
//! changed `.stderr`: a message is part of the API.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
