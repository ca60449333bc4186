//! The coefficient encoder q(c | z0, z1) and the learned prior p(c | z0) (docs/method.md §4): two MLPs whose
//! heads give the location μ and log-scale ln b of a Laplace distribution over the M coefficients.
//!
//! * Encoder: input concat(sg z0, sg z1) (2d), trunk 2d→2048→2048→512;
//!   ln b = clamp(h_scale, −100, 3) + ln 0.01 and μ = clamp(h_loc, −5, 5) + 0.05.
//! * Prior: input sg z0 (d), trunk d→2048→1024→512; ln b = min(h_scale, 3) + ln 0.01 (no lower
//!   clamp) and μ = clamp(h_loc, −5, 5).
//!
//! The trunks have LeakyReLU(0.01) between layers and none after the last; both heads are
//! 512→M linear layers reading the trunk output. The constants (clamps, offsets, slope) are
//! [`mclr_shared::operators`]'s, the CPU reference the viewer runs, and [`CoefficientMlp::export`]
//! hands the weights over in the bundle's [`MlpWeights`] form so that both sides run the same
//! networks. The prior's warm-up blend belongs to the sampling code, not here.
//!
//! Variables are registered under [`ENCODER_PREFIX`] and [`PRIOR_PREFIX`] as `trunk.<i>`,
//! `scale_head` and `loc_head` (each with `weight` (out, in) and `bias`), mirroring
//! [`MlpWeights`]'s fields. Initialisation is PyTorch's default for `Linear`, as in the reference.

use candle_core::{DType, Result, Tensor, bail};
use candle_nn::{Linear, Module, VarBuilder};
use mclr_shared::bundle::{ArrayBlob, LinearWeights, MlpWeights};
use mclr_shared::operators::{
    ENCODER_LOC_OFFSET, ENCODER_LOGSCALE_RANGE, LEAKY_RELU_SLOPE, LOC_CLAMP, PRIOR_LOGSCALE_MAX,
    SCALE_PRIOR_LN,
};

use super::projection::torch_linear;

/// Prefix of the encoder's variables in the [`candle_nn::VarMap`] (the optimiser's "encoder +
/// prior" group, docs/method.md §7).
pub const ENCODER_PREFIX: &str = "encoder";
/// Prefix of the prior network's variables in the [`candle_nn::VarMap`].
pub const PRIOR_PREFIX: &str = "prior";
/// The paper's encoder trunk widths after the 2d input.
pub const ENCODER_HIDDEN: [usize; 3] = [2048, 2048, 512];
/// The paper's prior trunk widths after the d input.
pub const PRIOR_HIDDEN: [usize; 3] = [2048, 1024, 512];

/// `torch.clamp(x, min, max)`, gradient included: the value is clamped, and the gradient passes
/// unchanged where `min ≤ x ≤ max` (boundaries included) and is zero elsewhere.
///
/// candle's [`Tensor::clamp`] (a maximum then a minimum) halves the gradient at the boundaries;
/// this selects between `x` and the detached clamped value instead. Use ±∞ for a one-sided clamp.
pub fn clamp(x: &Tensor, min: f64, max: f64) -> Result<Tensor> {
    if min.is_nan() || max.is_nan() || min > max {
        bail!("clamp range [{min}, {max}] is empty");
    }
    let clamped = x.clamp(min, max)?.detach();
    x.eq(&clamped)?.where_cond(x, &clamped)
}

/// `torch.nn.functional.leaky_relu` with slope [`LEAKY_RELU_SLOPE`]: x for x > 0, else slope·x,
/// and the same derivative (slope at 0).
fn leaky_relu(x: &Tensor) -> Result<Tensor> {
    x.gt(0.0)?
        .where_cond(x, &x.affine(f64::from(LEAKY_RELU_SLOPE), 0.0)?)
}

/// Everything a coefficient network computes for a batch of rows.
#[derive(Debug, Clone)]
pub struct CoefficientHeads {
    /// Trunk output (B, hidden).
    pub features: Tensor,
    /// Raw log-scale head h_scale (B, M), before clamping and offset.
    pub scale_raw: Tensor,
    /// Raw location head h_loc (B, M), before clamping and offset.
    pub loc_raw: Tensor,
    /// Laplace log-scale ln b (B, M): clamped and offset by ln 0.01.
    pub logscale: Tensor,
    /// Laplace location μ (B, M): clamped (and offset, for the encoder).
    pub loc: Tensor,
}

/// A trunk of linear layers with LeakyReLU between them (none after the last) and two linear
/// heads reading its output: the network shape of both the encoder and the prior.
#[derive(Debug, Clone)]
pub struct CoefficientMlp {
    trunk: Vec<Linear>,
    scale_head: Linear,
    loc_head: Linear,
    input_dim: usize,
    num_operators: usize,
}

impl CoefficientMlp {
    /// An MLP from `input_dim` through the `hidden` trunk widths to two heads of
    /// `num_operators`, with variables `trunk.<i>`, `scale_head` and `loc_head` under `vb`.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "candle-nn's convention: layer constructors take their VarBuilder by value"
    )]
    pub fn new(
        input_dim: usize,
        hidden: &[usize],
        num_operators: usize,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let Some(&last) = hidden.last() else {
            bail!("a coefficient MLP needs at least one trunk layer");
        };
        let mut trunk = Vec::with_capacity(hidden.len());
        let mut width = input_dim;
        for (i, &out) in hidden.iter().enumerate() {
            trunk.push(torch_linear(width, out, &vb.pp(format!("trunk.{i}")))?);
            width = out;
        }
        Ok(Self {
            trunk,
            scale_head: torch_linear(last, num_operators, &vb.pp("scale_head"))?,
            loc_head: torch_linear(last, num_operators, &vb.pp("loc_head"))?,
            input_dim,
            num_operators,
        })
    }

    /// Input width.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Width of each head, M.
    pub fn num_operators(&self) -> usize {
        self.num_operators
    }

    /// `(features, scale head, location head)` for `x` (B, input): the trunk output (B, hidden)
    /// and the two raw heads (B, M), before any clamp.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (_, width) = x.dims2()?;
        if width != self.input_dim {
            bail!(
                "coefficient MLP expects inputs (B, {}), got {:?}",
                self.input_dim,
                x.dims()
            );
        }
        let layers = self.trunk.len();
        let mut h = x.clone();
        for (i, layer) in self.trunk.iter().enumerate() {
            h = layer.forward(&h)?;
            if i + 1 < layers {
                h = leaky_relu(&h)?;
            }
        }
        let scale = self.scale_head.forward(&h)?;
        let loc = self.loc_head.forward(&h)?;
        Ok((h, scale, loc))
    }

    /// The weights in the bundle's form (PyTorch layout, f32), for the exporter and for the CPU
    /// reference ([`mclr_shared::operators::Mlp`]) that the viewer runs.
    pub fn export(&self) -> Result<MlpWeights> {
        Ok(MlpWeights {
            trunk: self
                .trunk
                .iter()
                .map(export_linear)
                .collect::<Result<_>>()?,
            scale_head: export_linear(&self.scale_head)?,
            loc_head: export_linear(&self.loc_head)?,
        })
    }
}

/// One layer as [`LinearWeights`]: weight (out, in) and bias (out), f32.
#[allow(clippy::disallowed_methods)] // export, not a training step
fn export_linear(layer: &Linear) -> Result<LinearWeights> {
    let blob = |t: &Tensor| -> Result<ArrayBlob> {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        ArrayBlob::from_f32(t.dims(), &values).map_err(candle_core::Error::wrap)
    };
    let Some(bias) = layer.bias() else {
        bail!("coefficient MLP layer without a bias cannot be exported");
    };
    Ok(LinearWeights {
        weight: blob(layer.weight())?,
        bias: blob(bias)?,
        weight_scale: None,
    })
}

/// The coefficient encoder q(c | z0, z1): which coefficients carry z0 to z1.
#[derive(Debug, Clone)]
pub struct CoefficientEncoder {
    mlp: CoefficientMlp,
    feature_dim: usize,
}

impl CoefficientEncoder {
    /// The paper's encoder ([`ENCODER_HIDDEN`]) for features of width `feature_dim` and
    /// `num_operators` coefficients, with variables under [`ENCODER_PREFIX`].
    pub fn new(feature_dim: usize, num_operators: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Self::with_hidden(feature_dim, &ENCODER_HIDDEN, num_operators, vb)
    }

    /// An encoder with other trunk widths (e.g. smaller ones for tests).
    #[allow(
        clippy::needless_pass_by_value,
        reason = "candle-nn's convention: layer constructors take their VarBuilder by value"
    )]
    pub fn with_hidden(
        feature_dim: usize,
        hidden: &[usize],
        num_operators: usize,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let input = feature_dim
            .checked_mul(2)
            .filter(|&w| w > 0)
            .ok_or_else(|| candle_core::Error::msg("encoder feature width must be positive"))?;
        Ok(Self {
            mlp: CoefficientMlp::new(input, hidden, num_operators, vb.pp(ENCODER_PREFIX))?,
            feature_dim,
        })
    }

    /// The posterior for feature pairs z0, z1 (B, d) each. The inputs are detached (sg z0,
    /// sg z1): the encoder's loss terms train the encoder, not the backbone.
    pub fn forward(&self, z0: &Tensor, z1: &Tensor) -> Result<CoefficientHeads> {
        self.forward_without_stop_gradient(&z0.detach(), &z1.detach())
    }

    /// [`Self::forward`] without detaching the inputs, so gradients reach z0 and z1. Training
    /// never wants this; it exists to check the backward pass through the clamps against the
    /// reference, which differentiates with respect to the inputs.
    pub fn forward_without_stop_gradient(
        &self,
        z0: &Tensor,
        z1: &Tensor,
    ) -> Result<CoefficientHeads> {
        let (rows, width) = z0.dims2()?;
        if width != self.feature_dim || z1.dims() != z0.dims() {
            bail!(
                "coefficient encoder expects z0 and z1 of shape (B, {}), got {:?} and {:?}",
                self.feature_dim,
                z0.dims(),
                z1.dims()
            );
        }
        if rows == 0 {
            bail!("coefficient encoder got an empty batch");
        }
        let x = Tensor::cat(&[z0, z1], 1)?;
        let (features, scale_raw, loc_raw) = self.mlp.forward(&x)?;
        let (lo, hi) = ENCODER_LOGSCALE_RANGE;
        let logscale =
            (clamp(&scale_raw, f64::from(lo), f64::from(hi))? + f64::from(SCALE_PRIOR_LN))?;
        let loc_clamp = f64::from(LOC_CLAMP);
        let loc = (clamp(&loc_raw, -loc_clamp, loc_clamp)? + f64::from(ENCODER_LOC_OFFSET))?;
        Ok(CoefficientHeads {
            features,
            scale_raw,
            loc_raw,
            logscale,
            loc,
        })
    }

    /// Feature width d (the input is 2d).
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// The underlying network.
    pub fn mlp(&self) -> &CoefficientMlp {
        &self.mlp
    }

    /// The weights in the bundle's form (the bundle's `encoder` section).
    pub fn export(&self) -> Result<MlpWeights> {
        self.mlp.export()
    }
}

/// The learned prior p(c | z0): which moves are plausible at z0.
#[derive(Debug, Clone)]
pub struct PriorNetwork {
    mlp: CoefficientMlp,
}

impl PriorNetwork {
    /// The paper's prior ([`PRIOR_HIDDEN`]) for features of width `feature_dim` and
    /// `num_operators` coefficients, with variables under [`PRIOR_PREFIX`].
    pub fn new(feature_dim: usize, num_operators: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Self::with_hidden(feature_dim, &PRIOR_HIDDEN, num_operators, vb)
    }

    /// A prior with other trunk widths (e.g. smaller ones for tests).
    #[allow(
        clippy::needless_pass_by_value,
        reason = "candle-nn's convention: layer constructors take their VarBuilder by value"
    )]
    pub fn with_hidden(
        feature_dim: usize,
        hidden: &[usize],
        num_operators: usize,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        if feature_dim == 0 {
            bail!("prior feature width must be positive");
        }
        Ok(Self {
            mlp: CoefficientMlp::new(feature_dim, hidden, num_operators, vb.pp(PRIOR_PREFIX))?,
        })
    }

    /// The learned prior (before any warm-up blend) at features z0 (B, d), detached (sg z0).
    pub fn forward(&self, z0: &Tensor) -> Result<CoefficientHeads> {
        self.forward_without_stop_gradient(&z0.detach())
    }

    /// [`Self::forward`] without detaching z0, so gradients reach it; for checking the backward
    /// pass against the reference only.
    pub fn forward_without_stop_gradient(&self, z0: &Tensor) -> Result<CoefficientHeads> {
        let (rows, _) = z0.dims2()?;
        if rows == 0 {
            bail!("prior network got an empty batch");
        }
        let (features, scale_raw, loc_raw) = self.mlp.forward(z0)?;
        let logscale = (clamp(&scale_raw, f64::NEG_INFINITY, f64::from(PRIOR_LOGSCALE_MAX))?
            + f64::from(SCALE_PRIOR_LN))?;
        let loc_clamp = f64::from(LOC_CLAMP);
        let loc = clamp(&loc_raw, -loc_clamp, loc_clamp)?;
        Ok(CoefficientHeads {
            features,
            scale_raw,
            loc_raw,
            logscale,
            loc,
        })
    }

    /// Feature width d.
    pub fn feature_dim(&self) -> usize {
        self.mlp.input_dim()
    }

    /// The underlying network.
    pub fn mlp(&self) -> &CoefficientMlp {
        &self.mlp
    }

    /// The weights in the bundle's form (the bundle's `prior` section).
    pub fn export(&self) -> Result<MlpWeights> {
        self.mlp.export()
    }
}
