//! The optional SimCLR projection head (docs/method.md §4): Linear d→1024, BatchNorm1d, ReLU, Linear
//! 1024→128, as in the authors' `ProjectionHeader`. The contrastive loss reads its output in the
//! "with head" configurations; evaluation never does (it uses the backbone features, docs/method.md §10).

use candle_core::{Result, Tensor, bail};
use candle_nn::{Init, Linear, Module, ModuleT, VarBuilder};

use super::batch_norm::BatchNorm;

/// Prefix of every projection-head variable in the [`candle_nn::VarMap`] (the optimiser puts them
/// in the backbone's parameter group, docs/method.md §7).
pub const VAR_PREFIX: &str = "projection";
/// The paper's hidden width.
pub const PAPER_HIDDEN_DIM: usize = 1024;
/// The paper's output width.
pub const PAPER_OUTPUT_DIM: usize = 128;

/// Widths of the projection head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProjectionConfig {
    /// Input width: the backbone's feature dimension.
    pub input_dim: usize,
    /// Width of the hidden layer (and of its BatchNorm).
    pub hidden_dim: usize,
    /// Output width.
    pub output_dim: usize,
}

impl ProjectionConfig {
    /// The paper's head (hidden 1024, output 128) on features of width `input_dim`.
    pub fn paper(input_dim: usize) -> Self {
        Self {
            input_dim,
            hidden_dim: PAPER_HIDDEN_DIM,
            output_dim: PAPER_OUTPUT_DIM,
        }
    }
}

/// A linear layer `y = x·Wᵀ + b` with W (out, in) and PyTorch's default init: W and b uniform in
/// ±1/√in. Variables `weight` and `bias` under `vb`.
pub(crate) fn torch_linear(inputs: usize, outputs: usize, vb: &VarBuilder<'_>) -> Result<Linear> {
    if inputs == 0 || outputs == 0 {
        bail!("empty linear layer {inputs} → {outputs}");
    }
    let bound = 1.0 / (inputs as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints((outputs, inputs), "weight", init)?;
    let bias = vb.get_with_hints(outputs, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}

/// The projection head. Variables under [`VAR_PREFIX`]: `fc1`, `bn1` and `fc2`.
#[derive(Debug, Clone)]
pub struct ProjectionHead {
    config: ProjectionConfig,
    fc1: Linear,
    bn1: BatchNorm,
    fc2: Linear,
}

impl ProjectionHead {
    /// Builds the head, registering (or reading) its variables under [`VAR_PREFIX`] in `vb`'s
    /// store. Fails if a width is 0 or a stored variable has the wrong shape.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "candle-nn's convention: layer constructors take their VarBuilder by value"
    )]
    pub fn new(config: ProjectionConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let vb = vb.pp(VAR_PREFIX);
        Ok(Self {
            config,
            fc1: torch_linear(config.input_dim, config.hidden_dim, &vb.pp("fc1"))?,
            bn1: BatchNorm::new(config.hidden_dim, vb.pp("bn1"))?,
            fc2: torch_linear(config.hidden_dim, config.output_dim, &vb.pp("fc2"))?,
        })
    }

    /// The widths the head was built with.
    pub fn config(&self) -> ProjectionConfig {
        self.config
    }

    /// Chooses the batch norm's CPU implementation (see [`super::Kernels`]).
    pub fn set_kernels(&mut self, kernels: super::Kernels) {
        self.bn1.set_kernels(kernels);
    }
}

impl ProjectionHead {
    /// [`ModuleT::forward_t`] in training mode, updating the BatchNorm's running statistics
    /// only when `update_running`: one DataParallel replica's pass (only the first replica's
    /// updates reach the module).
    pub fn forward_replica(&self, x: &Tensor, update_running: bool) -> Result<Tensor> {
        self.check_width(x)?;
        let h = self
            .bn1
            .forward_with(&self.fc1.forward(x)?, true, true, update_running)?;
        self.fc2.forward(&h)
    }

    fn check_width(&self, x: &Tensor) -> Result<()> {
        let (_, width) = x.dims2()?;
        if width != self.config.input_dim {
            bail!(
                "projection head expects features (B, {}), got {:?}",
                self.config.input_dim,
                x.dims()
            );
        }
        Ok(())
    }
}

impl ModuleT for ProjectionHead {
    /// Projections (B, out) of features (B, in). `train` selects BatchNorm's mode; in training
    /// the batch needs at least two rows.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.check_width(x)?;
        let h = self.bn1.forward_act(&self.fc1.forward(x)?, train, true)?;
        self.fc2.forward(&h)
    }
}
