//! The training log: one JSON object per line in `metrics.jsonl`, with every loss term and the
//! diagnostics the authors logged (docs/method.md §11).
// Diagnostics run at logging steps only, where the loop reads back anyway.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use candle_core::{D, DType, Result as CResult, Tensor};
use serde::Serialize;

use super::step::{LossTerms, StepTensors};
use crate::error::{Error, Result};
use crate::model::ssl::SslModel;

/// Representation and operator health at one step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diagnostics {
    /// Mean L2 norm of the backbone features.
    pub feature_norm: f64,
    /// Feature collapse 1 − √d · mean per-dimension std of the L2-normalised features (0 when
    /// spread over the sphere, 1 when collapsed to a point).
    pub collapse: f64,
    /// Effective rank exp(H(σ/Σσ)) of the centred feature batch (σ its singular values).
    pub effective_rank: f64,
    /// ManifoldCLR only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifold: Option<ManifoldDiagnostics>,
}

/// Operator and coefficient diagnostics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ManifoldDiagnostics {
    /// Frobenius norm of each Ψ_m.
    pub operator_norms: Vec<f32>,
    /// Fraction of pairs whose coefficient m is non-zero.
    pub usage: Vec<f32>,
    /// Mean number of non-zero coefficients per pair.
    pub nonzero_per_pair: f64,
    /// Mean |c|.
    pub mean_abs_c: f64,
    /// Σ‖z1 − T(c)z0‖² / Σ‖z1 − z0‖² over the batch: below 1 when the operators transport.
    pub distance_improvement: f64,
    /// [min, max] of the encoder's log-scale.
    pub encoder_logscale: [f64; 2],
    /// [min, max] of the encoder's location.
    pub encoder_loc: [f64; 2],
    /// [min, max] of the warmed prior's log-scale.
    pub prior_logscale: [f64; 2],
    /// [min, max] of the warmed prior's location.
    pub prior_loc: [f64; 2],
    /// Mean |c̃| of the prior samples used for augmentation.
    pub mean_abs_prior_sample: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsRecord {
    /// Global iteration (0-based, the step just taken).
    pub step: u64,
    /// Epoch of that step.
    pub epoch: u64,
    /// Loss terms.
    pub loss: LossTerms,
    /// Learning rate of each optimiser group.
    pub lr: BTreeMap<String, f64>,
    /// Gradient norm of each group before clipping.
    pub grad_norm: BTreeMap<String, f64>,
    /// Training throughput since the previous record, in image pairs per second.
    pub pairs_per_sec: f64,
    /// Diagnostics of the step's batch.
    #[serde(flatten)]
    pub diagnostics: Diagnostics,
}

/// Appends records to a `metrics.jsonl`.
pub struct MetricsWriter {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl MetricsWriter {
    /// Opens `path` for appending (a resumed run continues the same log).
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::Io {
                action: "opening",
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// Opens `path` and cuts it back to `len` bytes: the log as it was at the checkpoint a run
    /// resumes from (records written after it are dropped, so that the resumed run does not log
    /// the same steps twice). `len` 0 starts an empty log. A log shorter than `len` is kept.
    pub fn open_at(path: &Path, len: u64) -> Result<Self> {
        let writer = Self::open(path)?;
        let current = writer
            .file
            .metadata()
            .map_err(|source| Error::Io {
                action: "reading the length of",
                path: path.to_owned(),
                source,
            })?
            .len();
        if current > len {
            writer.file.set_len(len).map_err(|source| Error::Io {
                action: "truncating",
                path: path.to_owned(),
                source,
            })?;
        } else if current < len {
            tracing::warn!(
                "{} is {current} bytes, shorter than the {len} recorded at the checkpoint",
                path.display()
            );
        }
        Ok(writer)
    }

    /// Flushes the log to disk and returns its length in bytes.
    pub fn sync_len(&mut self) -> Result<u64> {
        self.file.sync_data().map_err(|source| Error::Io {
            action: "syncing",
            path: self.path.clone(),
            source,
        })?;
        Ok(self
            .file
            .metadata()
            .map_err(|source| Error::Io {
                action: "reading the length of",
                path: self.path.clone(),
                source,
            })?
            .len())
    }

    /// Writes one record as a line.
    pub fn write(&mut self, record: &MetricsRecord) -> Result<()> {
        let line = serde_json::to_string(record).map_err(|source| Error::Json {
            action: "serialise a metrics record for",
            path: self.path.clone(),
            source,
        })?;
        writeln!(self.file, "{line}").map_err(|source| Error::Io {
            action: "appending to",
            path: self.path.clone(),
            source,
        })
    }
}

/// Computes the diagnostics of one step.
pub fn diagnostics(model: &SslModel, t: &StepTensors) -> CResult<Diagnostics> {
    let z0 = t.z0.to_dtype(DType::F64)?;
    let (b, d) = z0.dims2()?;
    let feature_norm = z0.sqr()?.sum(1)?.sqrt()?.mean_all()?.to_scalar::<f64>()?;
    let normed = z0.broadcast_div(&z0.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?)?;
    let std = normed
        .broadcast_sub(&normed.mean_keepdim(0)?)?
        .sqr()?
        .mean(0)?
        .sqrt()?;
    let collapse = 1.0 - (d as f64).sqrt() * std.mean_all()?.to_scalar::<f64>()?;
    let centred = z0.broadcast_sub(&z0.mean_keepdim(0)?)?;
    let cov = centred
        .t()?
        .matmul(&centred)?
        .affine(1.0 / (b.max(2) - 1) as f64, 0.0)?;
    let effective_rank = effective_rank(&cov.flatten_all()?.to_vec1::<f64>()?, d);
    let manifold = match (&t.manifold, &model.manifold) {
        (Some(m), Some(parts)) => {
            let c = m.c.to_dtype(DType::F64)?;
            let nonzero = c.ne(0.0)?.to_dtype(DType::F64)?;
            let z1 = t.z1.to_dtype(DType::F64)?;
            let moved = (&z1 - m.z_hat.to_dtype(DType::F64)?)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
            let before = (&z1 - &z0)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
            let range = |x: &Tensor| -> CResult<[f64; 2]> {
                let x = x.to_dtype(DType::F64)?.flatten_all()?;
                Ok([
                    x.min(D::Minus1)?.to_scalar()?,
                    x.max(D::Minus1)?.to_scalar()?,
                ])
            };
            Some(ManifoldDiagnostics {
                operator_norms: parts.operators.frobenius_norms()?.to_vec1::<f32>()?,
                usage: nonzero.mean(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                nonzero_per_pair: nonzero.sum(1)?.mean_all()?.to_scalar()?,
                mean_abs_c: c.abs()?.mean_all()?.to_scalar()?,
                distance_improvement: if before > 0.0 {
                    moved / before
                } else {
                    f64::NAN
                },
                encoder_logscale: range(&m.encoder.1)?,
                encoder_loc: range(&m.encoder.0)?,
                prior_logscale: range(&m.prior.1)?,
                prior_loc: range(&m.prior.0)?,
                mean_abs_prior_sample: m
                    .c_aug
                    .to_dtype(DType::F64)?
                    .abs()?
                    .mean_all()?
                    .to_scalar()?,
            })
        }
        _ => None,
    };
    Ok(Diagnostics {
        feature_norm,
        collapse,
        effective_rank,
        manifold,
    })
}

/// exp of the entropy of the normalised singular values, from the covariance's eigenvalues.
fn effective_rank(cov: &[f64], d: usize) -> f64 {
    let Ok(eig) = mclr_shared::geometry::symmetric_eigen(cov, d) else {
        return f64::NAN;
    };
    let sigma: Vec<f64> = eig.values.iter().map(|l| l.max(0.0).sqrt()).collect();
    let total: f64 = sigma.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let entropy: f64 = sigma
        .iter()
        .map(|s| s / total)
        .filter(|p| *p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy.exp()
}
