//! Forward pass of the small MLPs behind the prior p(c | z0) and the encoder q(c | z0, z1): a trunk
//! of linear layers with LeakyReLU between them, then a log-scale head and a location head.

use crate::error::ensure_finite;
use crate::{Error, Result};

/// Negative slope of the LeakyReLU between trunk layers (PyTorch's default, as the reference uses).
pub const LEAKY_RELU_SLOPE: f32 = 0.01;

/// A linear layer in PyTorch's layout: `y = x·Wᵀ + b` with W of shape (out, in).
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    inputs: usize,
    outputs: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    /// Checks that `weight` is (outputs, inputs) and `bias` is (outputs), all finite. `field`
    /// names the layer in errors (e.g. `prior.trunk[0]`).
    pub fn new(
        field: &str,
        inputs: usize,
        outputs: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<Self> {
        if inputs == 0 || outputs == 0 {
            return Err(Error::invalid(
                field,
                format!("empty layer {inputs} → {outputs}"),
            ));
        }
        if Some(weight.len()) != inputs.checked_mul(outputs) {
            return Err(Error::Shape {
                field: format!("{field}.weight"),
                expected: vec![outputs, inputs],
                found: vec![weight.len()],
            });
        }
        if bias.len() != outputs {
            return Err(Error::shape(
                format!("{field}.bias"),
                &[outputs],
                &[bias.len()],
            ));
        }
        ensure_finite(&format!("{field}.weight"), weight.iter().copied())?;
        ensure_finite(&format!("{field}.bias"), bias.iter().copied())?;
        Ok(Self {
            inputs,
            outputs,
            weight,
            bias,
        })
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.inputs
    }
    /// Output width.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `x·Wᵀ + b` for `x` of shape (rows, inputs); the caller guarantees the length.
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.len() / self.inputs * self.outputs);
        for row in x.chunks_exact(self.inputs) {
            for (w, b) in self.weight.chunks_exact(self.inputs).zip(&self.bias) {
                out.push(row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + b);
            }
        }
        out
    }
}

/// Trunk and two heads, as the reference builds them: LeakyReLU after every trunk layer but the
/// last, none after the trunk's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    trunk: Vec<Linear>,
    scale_head: Linear,
    loc_head: Linear,
}

/// Everything an [`Mlp`] forward pass computes, before any clamp: useful for diagnostics and for
/// testing each stage against the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpOutput {
    /// Trunk output (rows × hidden).
    pub features: Vec<f32>,
    /// Raw log-scale head (rows × M).
    pub scale: Vec<f32>,
    /// Raw location head (rows × M).
    pub loc: Vec<f32>,
}

impl Mlp {
    /// Checks that the layers chain: each trunk layer's input is the previous one's output and
    /// both heads read the trunk output and have the same width.
    pub fn new(
        field: &str,
        trunk: Vec<Linear>,
        scale_head: Linear,
        loc_head: Linear,
    ) -> Result<Self> {
        let Some(last) = trunk.last() else {
            return Err(Error::invalid(
                format!("{field}.trunk"),
                "needs at least one layer",
            ));
        };
        let hidden = last.outputs;
        for (i, pair) in trunk.windows(2).enumerate() {
            if let [a, b] = pair
                && b.inputs != a.outputs
            {
                return Err(Error::shape(
                    format!("{field}.trunk[{}].weight", i + 1),
                    &[b.outputs, a.outputs],
                    &[b.outputs, b.inputs],
                ));
            }
        }
        for (name, head) in [("scale_head", &scale_head), ("loc_head", &loc_head)] {
            if head.inputs != hidden || head.outputs != scale_head.outputs {
                return Err(Error::shape(
                    format!("{field}.{name}.weight"),
                    &[scale_head.outputs, hidden],
                    &[head.outputs, head.inputs],
                ));
            }
        }
        Ok(Self {
            trunk,
            scale_head,
            loc_head,
        })
    }

    /// Width of the input.
    pub fn input_dim(&self) -> usize {
        self.trunk.first().map_or(0, Linear::inputs)
    }
    /// Width of each head (M).
    pub fn output_dim(&self) -> usize {
        self.scale_head.outputs
    }

    /// Forward pass for `x` of shape (rows, `input_dim`).
    pub fn forward(&self, x: &[f32]) -> Result<MlpOutput> {
        let d = self.input_dim();
        if x.is_empty() || !x.len().is_multiple_of(d) {
            return Err(Error::invalid(
                "mlp input",
                format!("{} values are not rows of width {d}", x.len()),
            ));
        }
        let mut h = x.to_vec();
        let layers = self.trunk.len();
        for (i, layer) in self.trunk.iter().enumerate() {
            h = layer.forward(&h);
            if i + 1 < layers {
                for v in &mut h {
                    if *v < 0.0 {
                        *v *= LEAKY_RELU_SLOPE;
                    }
                }
            }
        }
        Ok(MlpOutput {
            scale: self.scale_head.forward(&h),
            loc: self.loc_head.forward(&h),
            features: h,
        })
    }
}
