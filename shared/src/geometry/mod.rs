//! Geometry of feature galleries: principal component analysis and exact k-nearest neighbours.
//!
//! A gallery's features are projected to a few dimensions with a [`Pca`] (fitted here, or rebuilt
//! from a bundle's `pca` section with [`Pca::from_parts`]), and "which images are nearest to this
//! one" is answered by a [`KnnIndex`]. Both are the CPU reference: plain `f32` storage,
//! deterministic results (the `parallel` feature changes the speed, never the bits) and a typed
//! error for every malformed input.
//!
//! [`symmetric_eigen`] is the dense symmetric eigen-solver behind the PCA fit, public because it is
//! also the oracle that tests of anything spectral compare against. [`eigenvalues_general`] finds
//! the (complex) eigenvalues of a non-symmetric matrix, such as an operator block of Ψ.

mod eigen;
mod eigen_general;
mod knn;
mod pca;

pub use eigen::{MAX_QL_ITERATIONS, SymmetricEigen, symmetric_eigen};
pub use eigen_general::{MAX_BALANCE_SWEEPS, MAX_QR_ITERATIONS, eigenvalues_general};
pub use knn::{KnnIndex, Metric, Neighbour, top_k};
pub use pca::Pca;
