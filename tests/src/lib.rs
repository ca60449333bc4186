//! Cross-crate integration tests for mclr live in this crate's `tests/` folder.
