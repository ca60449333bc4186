//! The networks and learned parameters of SimCLR and ManifoldCLR (SPEC §4): the backbone, the
//! optional projection head, the coefficient encoder and prior, and the operator dictionary Ψ.

pub mod batch_norm;
pub mod coefficients;
pub mod init;
pub mod operators;
pub mod projection;
pub mod resnet;
pub mod ssl;
