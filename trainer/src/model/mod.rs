//! The networks and learned parameters of SimCLR and ManifoldCLR (docs/method.md §4): the backbone, the
//! optional projection head, the coefficient encoder and prior, and the operator dictionary Ψ.

pub mod batch_norm;
pub mod coefficients;
pub mod conv;
pub mod init;
pub mod matmul;
pub mod operators;
pub mod projection;
pub mod residual;
pub mod resnet;
pub mod ssl;

/// Which implementation the backbone's layers run on the CPU. Results agree to rounding; the
/// reference exists so that tests can compare the two on the same weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Kernels {
    /// The crate's GEMM convolution and fused batch norm (the default).
    #[default]
    Fast,
    /// candle's own convolution and composite batch norm.
    Reference,
}
