//! Device-to-host reads of the training loop, in one place and counted.
//!
//! On a GPU, reading a tensor's values waits for every kernel queued before it: a read per
//! training step serialises the host with the device and leaves the GPU idle while the next step
//! is prepared. So the training step reads nothing; the loop reads its loss terms, gradient
//! norms and finiteness flags once per logging step and once per epoch (see
//! [`crate::train::monitor`]), and [`crate::expm::expm_composite`] (the off-CPU matrix
//! exponential) reads its plan once per call.
//!
//! Every such read goes through [`to_f64s`], which counts it on the calling thread, so that a
//! test can check the number of reads per step on the CPU. The workspace's clippy configuration
//! forbids `Tensor::to_scalar`/`to_vecN` elsewhere in the trainer, except in the modules that
//! are not part of a training step (evaluation, export, diagnostics at logging steps), which
//! opt out explicitly.

use std::cell::Cell;

use candle_core::{DType, Result, Tensor};

thread_local! {
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// Reads every value of `t` to the host as f64, in one transfer, and counts the read.
///
/// # Errors
/// If the cast or the transfer fails.
#[allow(clippy::disallowed_methods)] // the one counted read
pub fn to_f64s(t: &Tensor) -> Result<Vec<f64>> {
    READS.with(|reads| reads.set(reads.get() + 1));
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()
}

/// How many reads [`to_f64s`] has made on this thread so far.
pub fn count() -> u64 {
    READS.with(Cell::get)
}
