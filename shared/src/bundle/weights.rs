//! Storage precision of the prior and encoder weights, and the way back to dense `f32`.
//!
//! The two MLPs are most of a bundle (8 M parameters at d = 64, 11 M at d = 512): stored as f32
//! they alone are 32–42 MiB, too much to ship to a browser. Format v2 stores each layer's weight
//! as f32, f16, or i8 with one f32 scale per output row (symmetric, `scale = max |w_row| / 127`),
//! and keeps biases in f32. Consumers never see the difference: [`LinearWeights::dense_weight`]
//! and [`MlpWeights::to_mlp`] return dense f32.

use std::fmt;
use std::str::FromStr;

use super::array::{ArrayBlob, DType};
use super::contents::{LinearWeights, MlpWeights};
use crate::error::{Error, Result};
use crate::operators::{Linear, Mlp};

/// Largest magnitude of a symmetric int8 code.
const I8_MAX: f32 = 127.0;

/// How a bundle stores MLP weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightPrecision {
    /// Full f32: exact, 4 bytes per weight.
    F32,
    /// IEEE half: relative error ≤ 2⁻¹¹ per weight, 2 bytes.
    F16,
    /// Symmetric int8 with a per-row f32 scale: error ≤ scale/2 per weight, 1 byte. The default,
    /// because it is what keeps a bundle small enough to open over the network.
    #[default]
    I8,
}

impl WeightPrecision {
    /// The lowercase name used on command lines and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::I8 => "int8",
        }
    }
}

impl fmt::Display for WeightPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WeightPrecision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "int8" | "i8" => Ok(Self::I8),
            other => Err(Error::invalid(
                "weight precision",
                format!("unknown precision `{other}` (expected f32, f16 or int8)"),
            )),
        }
    }
}

impl LinearWeights {
    /// A layer from a dense row-major `weight` (`outputs` × `inputs`) and `bias`, stored at
    /// `precision`.
    pub fn from_dense(
        inputs: usize,
        outputs: usize,
        weight: &[f32],
        bias: &[f32],
        precision: WeightPrecision,
    ) -> Result<Self> {
        let shape = [outputs, inputs];
        let bias = ArrayBlob::from_f32(&[outputs], bias)?;
        let (weight, weight_scale) = match precision {
            WeightPrecision::F32 => (ArrayBlob::from_f32(&shape, weight)?, None),
            WeightPrecision::F16 => (ArrayBlob::from_f16_lossy(&shape, weight)?, None),
            WeightPrecision::I8 => {
                let (codes, scales) = quantize_rows(weight, inputs)?;
                (
                    ArrayBlob::from_i8(&shape, &codes)?,
                    Some(ArrayBlob::from_f32(&[outputs], &scales)?),
                )
            }
        };
        Ok(Self {
            weight,
            bias,
            weight_scale,
        })
    }

    /// The weight as dense row-major f32 (out × in), whatever its storage precision.
    pub fn dense_weight(&self) -> Result<Vec<f32>> {
        if self.weight.dtype != DType::I8 {
            return self.weight.to_f32_vec();
        }
        let codes = self.weight.to_i8_vec()?;
        let Some(scale) = &self.weight_scale else {
            return Err(Error::invalid(
                "weight_scale",
                "an i8 weight needs its per-row scale",
            ));
        };
        let scales = scale.to_f32_vec()?;
        let inputs = self.inputs()?;
        if inputs == 0 || codes.len() != scales.len().saturating_mul(inputs) {
            return Err(Error::invalid(
                "weight_scale",
                format!(
                    "{} row scales do not match an i8 weight of shape {:?}",
                    scales.len(),
                    self.weight.shape
                ),
            ));
        }
        Ok(codes
            .chunks_exact(inputs)
            .zip(&scales)
            .flat_map(|(row, &s)| row.iter().map(move |&q| f32::from(q) * s))
            .collect())
    }

    /// The same layer re-stored at `precision` (lossy when narrowing).
    pub fn with_precision(&self, precision: WeightPrecision) -> Result<Self> {
        Self::from_dense(
            self.inputs()?,
            self.outputs()?,
            &self.dense_weight()?,
            &self.bias.to_f32_vec()?,
            precision,
        )
    }

    /// Bytes of weight, scale and bias data.
    pub fn stored_bytes(&self) -> usize {
        let scale = self.weight_scale.as_ref().map_or(0, |s| s.data.len());
        self.weight.data.len() + self.bias.data.len() + scale
    }

    /// The layer as the CPU forward pass's [`Linear`]; `field` names it in errors.
    pub fn to_linear(&self, field: &str) -> Result<Linear> {
        Linear::new(
            field,
            self.inputs()?,
            self.outputs()?,
            self.dense_weight()?,
            self.bias.to_f32_vec()?,
        )
    }

    fn outputs(&self) -> Result<usize> {
        self.weight_dim(0)
    }

    fn inputs(&self) -> Result<usize> {
        self.weight_dim(1)
    }

    fn weight_dim(&self, i: usize) -> Result<usize> {
        let shape = self.weight.shape_usize()?;
        match (shape.len(), shape.get(i)) {
            (2, Some(&d)) => Ok(d),
            _ => Err(Error::invalid(
                "weight",
                format!("expected a rank-2 weight, found shape {shape:?}"),
            )),
        }
    }
}

impl MlpWeights {
    /// The network as the CPU forward pass ([`Mlp`]) with dense f32 weights; `field` (e.g.
    /// `prior`) names it in errors.
    pub fn to_mlp(&self, field: &str) -> Result<Mlp> {
        let trunk = self
            .trunk
            .iter()
            .enumerate()
            .map(|(i, layer)| layer.to_linear(&format!("{field}.trunk[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        Mlp::new(
            field,
            trunk,
            self.scale_head.to_linear(&format!("{field}.scale_head"))?,
            self.loc_head.to_linear(&format!("{field}.loc_head"))?,
        )
    }

    /// Every layer re-stored at `precision`.
    pub fn with_precision(&self, precision: WeightPrecision) -> Result<Self> {
        Ok(Self {
            trunk: self
                .trunk
                .iter()
                .map(|l| l.with_precision(precision))
                .collect::<Result<_>>()?,
            scale_head: self.scale_head.with_precision(precision)?,
            loc_head: self.loc_head.with_precision(precision)?,
        })
    }

    /// Bytes of all layers' weights, scales and biases.
    pub fn stored_bytes(&self) -> usize {
        self.trunk
            .iter()
            .chain([&self.scale_head, &self.loc_head])
            .map(LinearWeights::stored_bytes)
            .sum()
    }
}

/// Symmetric per-row int8 codes and scales of a row-major matrix with `inputs` columns. A zero
/// row gets scale 0 (and codes 0), so it round-trips exactly.
fn quantize_rows(weight: &[f32], inputs: usize) -> Result<(Vec<i8>, Vec<f32>)> {
    if inputs == 0 || !weight.len().is_multiple_of(inputs) {
        return Err(Error::invalid(
            "weight",
            format!("{} values do not form rows of {inputs}", weight.len()),
        ));
    }
    crate::error::ensure_finite("weight", weight.iter().copied())?;
    let mut codes = Vec::with_capacity(weight.len());
    let mut scales = Vec::with_capacity(weight.len() / inputs);
    for row in weight.chunks_exact(inputs) {
        let max = row.iter().fold(0.0_f32, |m, w| m.max(w.abs()));
        let scale = max / I8_MAX;
        scales.push(scale);
        codes.extend(row.iter().map(|&w| {
            if scale > 0.0 {
                // |w / scale| ≤ 127 by construction, so the cast cannot saturate.
                #[allow(clippy::cast_possible_truncation)]
                let q = (w / scale).round().clamp(-I8_MAX, I8_MAX) as i8;
                q
            } else {
                0
            }
        }));
    }
    Ok((codes, scales))
}
