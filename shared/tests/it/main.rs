//! The shared crate's integration tests, gathered into one test binary: the bundle format, the
//! matrix exponential, the geometry (PCA, eigenvalues, kNN) and the operators. The GPU engine's
//! tests stay in their own binaries (`gpu_engine`, `gpu_browser`): they need the `gpu` feature.

mod agreement;
mod bundle;
mod eigen_general;
mod expm;
mod geometry;
mod operators;
mod support;
