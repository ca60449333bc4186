//! The whole self-supervised model of one run: backbone, optional projection head and, for
//! ManifoldCLR, the operators with their coefficient encoder and prior — built reproducibly from a
//! config, with its parameters split into the optimiser's three groups (docs/method.md §7).

use candle_core::{Device, Result, Tensor, Var};
use candle_nn::{ModuleT, VarMap};

use super::batch_norm::is_running_stat;
use super::coefficients::{CoefficientEncoder, PriorNetwork};
use super::init::SeededVarMap;
use super::operators::{PSI_VAR_NAME, TransportOperator};
use super::projection::{ProjectionConfig, ProjectionHead};
use super::resnet::ResNet;
use crate::config::{Config, Method};

/// The ManifoldCLR-only parts.
#[derive(Debug, Clone)]
pub struct ManifoldParts {
    /// The operator dictionary Ψ and its transport T(c).
    pub operators: TransportOperator,
    /// q(c | z0, z1).
    pub encoder: CoefficientEncoder,
    /// p(c | z0).
    pub prior: PriorNetwork,
}

/// The networks of a run and the store of their variables.
pub struct SslModel {
    /// Every variable by name (`backbone.…`, `projection.…`, `operators.psi`, `encoder.…`, `prior.…`),
    /// BatchNorm running statistics included.
    pub varmap: VarMap,
    /// ResNet-18.
    pub backbone: ResNet,
    /// The projection head, in configs that have one.
    pub projection: Option<ProjectionHead>,
    /// Operators, encoder and prior, for ManifoldCLR.
    pub manifold: Option<ManifoldParts>,
    /// Ghost batch-norm group (`model.bn_group`), if any.
    bn_group: Option<usize>,
}

/// Which optimiser group a variable belongs to, by its name (docs/method.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Backbone and projection head.
    Backbone,
    /// The operators Ψ.
    Operators,
    /// Coefficient encoder and prior.
    Coefficients,
}

impl Group {
    /// The group of the variable `name`, or `None` for state that is not trained by gradient
    /// (BatchNorm running statistics).
    pub fn of(name: &str) -> Option<Self> {
        if is_running_stat(name) {
            None
        } else if name == PSI_VAR_NAME {
            Some(Self::Operators)
        } else if name.starts_with("encoder.") || name.starts_with("prior.") {
            Some(Self::Coefficients)
        } else {
            Some(Self::Backbone)
        }
    }

    /// The group's name in optimiser state and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Backbone => "backbone",
            Self::Operators => "operators",
            Self::Coefficients => "coefficients",
        }
    }
}

impl SslModel {
    /// Builds the model `config` describes for `image_px`-pixel inputs on `device`. Weights are
    /// drawn from `config.run.seed` in a fixed order, so the same config gives the same network.
    pub fn new(config: &Config, image_px: usize, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = SeededVarMap::new(varmap.clone(), config.run.seed).into_var_builder(device);
        let mut backbone = ResNet::new(config.backbone(image_px), vb.clone())?;
        let bn_group = (config.model.bn_group > 0).then_some(config.model.bn_group);
        backbone.set_bn_group(bn_group);
        let d = backbone.feature_dim();
        let projection = if config.model.projection_head {
            let pc = ProjectionConfig {
                input_dim: d,
                hidden_dim: config.model.projection_hidden,
                output_dim: config.model.projection_dim,
            };
            Some(ProjectionHead::new(pc, vb.clone())?)
        } else {
            None
        };
        let manifold = if config.method.kind == Method::Manifoldclr {
            let (m, n) = (config.method.operators, config.method.block_size);
            if n == 0 || !d.is_multiple_of(n) {
                candle_core::bail!(
                    "method.block_size {n} does not divide the feature dimension {d}"
                );
            }
            // Ψ's stable init draws from its own stream, derived from the run seed.
            let mut stream = crate::sampling::NoiseSource::new(config.run.seed ^ PSI_INIT_STREAM);
            let operators = TransportOperator::stable_init(
                &varmap,
                PSI_VAR_NAME,
                m,
                d / n,
                n,
                || stream.next_u() + 0.5,
                device,
            )?;
            Some(ManifoldParts {
                operators,
                encoder: CoefficientEncoder::new(d, m, vb.clone())?,
                prior: PriorNetwork::new(d, m, vb)?,
            })
        } else {
            None
        };
        Ok(Self {
            varmap,
            backbone,
            projection,
            manifold,
            bn_group,
        })
    }

    /// Chooses the CPU implementation of the backbone's and the head's layers (see
    /// [`super::Kernels`]); the default is the fast one.
    pub fn set_kernels(&mut self, kernels: super::Kernels) {
        self.backbone.set_kernels(kernels);
        if let Some(head) = &mut self.projection {
            head.set_kernels(kernels);
        }
    }

    /// Backbone features (B, d) of images (B, 3, H, W) in evaluation mode, for inference:
    /// nothing is recorded for backpropagation (see [`ResNet::infer`]).
    pub fn infer_features(&self, images: &Tensor) -> Result<Tensor> {
        self.backbone.infer(images)
    }

    /// Backbone features (B, d) of images (B, 3, H, W).
    pub fn features(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        self.backbone.forward_t(images, train)
    }

    /// What the contrastive loss compares: the projection of `z` when there is a head, else `z`.
    pub fn project(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        match &self.projection {
            Some(head) => head.forward_t(z, train),
            None => Ok(z.clone()),
        }
    }

    /// The projections of both views' features `z0`, `z1` (B, d each): the head runs **once** on
    /// cat[z0; z1], so its BatchNorm statistics cover 2B rows, as the reference's
    /// `self.projector(torch.cat([z0, z1]))` (`src/model/contrastive/projection_header.py`).
    /// Without a head, the features themselves.
    ///
    /// With ghost batch norm (`model.bn_group` = g) in training, the pairs are split as
    /// DataParallel splits them: replica r projects cat[z0_r; z1_r] of its g pairs, and only
    /// replica 0 updates the running statistics.
    pub fn project_pair(&self, z0: &Tensor, z1: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let Some(head) = &self.projection else {
            return Ok((z0.clone(), z1.clone()));
        };
        let b = z0.dim(0)?;
        if let Some(group) = self.bn_group.filter(|&g| train && b > g) {
            let (mut h0, mut h1) = (Vec::new(), Vec::new());
            for start in (0..b).step_by(group) {
                let n = group.min(b - start);
                let pair = Tensor::cat(&[z0.narrow(0, start, n)?, z1.narrow(0, start, n)?], 0)?;
                let h = head.forward_replica(&pair, start == 0)?;
                h0.push(h.narrow(0, 0, n)?);
                h1.push(h.narrow(0, n, n)?);
            }
            return Ok((Tensor::cat(&h0, 0)?, Tensor::cat(&h1, 0)?));
        }
        let h = self.project(&Tensor::cat(&[z0, z1], 0)?, train)?;
        Ok((h.narrow(0, 0, b)?, h.narrow(0, b, h.dim(0)? - b)?))
    }

    /// The trainable variables of each group, sorted by name so the order is stable.
    pub fn group_vars(&self, group: Group) -> Vec<(String, Var)> {
        let Ok(vars) = self.varmap.data().lock() else {
            return Vec::new();
        };
        let mut out: Vec<(String, Var)> = vars
            .iter()
            .filter(|(name, _)| Group::of(name) == Some(group))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Number of trainable scalars (running statistics excluded).
    pub fn num_parameters(&self) -> usize {
        [Group::Backbone, Group::Operators, Group::Coefficients]
            .iter()
            .flat_map(|g| self.group_vars(*g))
            .map(|(_, v)| v.elem_count())
            .sum()
    }
}

/// Offset of Ψ's init stream from the run seed (kept apart from the other weights' stream).
const PSI_INIT_STREAM: u64 = 0x0050_5349;
