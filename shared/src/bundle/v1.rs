//! Format v1, frozen: the payload types as v1 wrote them, and their upgrade to the current
//! [`Bundle`](super::Bundle). These types must never change again; files written by v1 are
//! decoded through them.
//!
//! v1 → v2: each MLP layer gained `weight_scale` (int8 weights); v1 weights are f32 and upgrade
//! with no scale. Every other section is unchanged, so it reuses the current types; if one of them
//! changes in a later version, freeze a copy of it here first.

use serde::Deserialize;

use super::array::ArrayBlob;
use super::contents::{self, Gallery, OperatorStats, PcaBasis, RunMetadata, Thumbnails};

/// A v1 bundle: the current sections, with v1's MLP layers.
#[derive(Debug, Deserialize)]
pub(super) struct Bundle {
    metadata: RunMetadata,
    operators: ArrayBlob,
    prior: MlpWeights,
    encoder: MlpWeights,
    gallery: Gallery,
    thumbnails: Thumbnails,
    pca: PcaBasis,
    stats: OperatorStats,
}

/// A v1 layer: f32 weight and bias.
#[derive(Debug, Deserialize)]
struct LinearWeights {
    weight: ArrayBlob,
    bias: ArrayBlob,
}

/// A v1 MLP.
#[derive(Debug, Deserialize)]
struct MlpWeights {
    trunk: Vec<LinearWeights>,
    scale_head: LinearWeights,
    loc_head: LinearWeights,
}

impl Bundle {
    /// The same contents as a current bundle (lossless).
    pub(super) fn upgrade(self) -> contents::Bundle {
        contents::Bundle {
            metadata: self.metadata,
            operators: self.operators,
            prior: self.prior.upgrade(),
            encoder: self.encoder.upgrade(),
            gallery: self.gallery,
            thumbnails: self.thumbnails,
            pca: self.pca,
            stats: self.stats,
        }
    }
}

impl MlpWeights {
    fn upgrade(self) -> contents::MlpWeights {
        contents::MlpWeights {
            trunk: self.trunk.into_iter().map(LinearWeights::upgrade).collect(),
            scale_head: self.scale_head.upgrade(),
            loc_head: self.loc_head.upgrade(),
        }
    }
}

impl LinearWeights {
    fn upgrade(self) -> contents::LinearWeights {
        contents::LinearWeights {
            weight: self.weight,
            bias: self.bias,
            weight_scale: None,
        }
    }
}
