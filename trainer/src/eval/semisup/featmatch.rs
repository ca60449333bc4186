//! FeatMatch's learned attention head (the reference's `AttenHead`) and its dropout mask.

use candle_core::{Device, Tensor, Var};

use super::softmax_rows;
use crate::Result;
use crate::augment::rng::StreamRng;
use crate::eval::{ensure_positive, invalid, linear_layer};

/// FeatMatch's learned attention head, the reference's `AttenHead(fdim, num_heads)`: `H` heads of
/// width `w = ⌊d / H⌋`, each with an embedding `embd_h: d → w` and an output layer
/// `fc_h: 2w → w`, and a final `fc: H·w → d`. For queries `x` (`N × d`) over memory `p`
/// (`M × d`): `a_h = dropout(softmax(embd_h(x) embd_h(p)ᵀ / √w))` (`N × M`),
/// `g_h = ReLU(fc_h([a_h embd_h(p), embd_h(x)]))` and the output is
/// `ReLU(x + fc([g_1, …, g_H]))`. The heads' layers are stored stacked (one matmul for all heads);
/// Adam is elementwise, so this trains exactly as separate layers.
#[derive(Debug, Clone)]
pub struct AttentionHead {
    /// Number of heads `H`.
    heads: usize,
    /// Width `w` of a head.
    width: usize,
    /// `embd_1..H`'s weights stacked: `H·w × d` (rows `h·w..(h+1)·w` are head `h`'s).
    embed_weight: Var,
    /// `embd_1..H`'s biases stacked: `H·w`.
    embed_bias: Var,
    /// `fc_1..H`'s weights: `H × w × 2w`.
    head_weight: Var,
    /// `fc_1..H`'s biases: `H × 1 × w`.
    head_bias: Var,
    /// `fc`'s weight: `d × H·w`.
    out_weight: Var,
    /// `fc`'s bias: `d`.
    out_bias: Var,
}

impl AttentionHead {
    /// A head of `heads` heads on `dim`-dimensional features with torch's `nn.Linear`
    /// initialisation, drawn from `rng` in the reference's creation order: `embd_1..H`, `fc_1..H`,
    /// `fc`, each weight then bias.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](crate::Error::InvalidSetting) when `dim < heads` (a head would have width 0) or `heads` is 0;
    /// [`Error::Candle`](crate::Error::Candle) if a tensor operation fails.
    pub fn new(rng: &mut StreamRng, dim: usize, heads: usize, device: &Device) -> Result<Self> {
        ensure_positive("featmatch attention heads", heads)?;
        let width = dim / heads;
        if width == 0 {
            return Err(invalid(
                "featmatch feature dimension",
                format!("at least the {heads} attention heads"),
                dim,
            ));
        }
        let mut layer = |fan_in: usize, fan_out: usize| -> Result<(Tensor, Tensor)> {
            let (w, b) = linear_layer(rng, fan_in, fan_out, device)?;
            Ok((w.as_tensor().clone(), b.as_tensor().clone()))
        };
        let embed = (0..heads)
            .map(|_| layer(dim, width))
            .collect::<Result<Vec<_>>>()?;
        let fc = (0..heads)
            .map(|_| layer(2 * width, width))
            .collect::<Result<Vec<_>>>()?;
        let out = layer(heads * width, dim)?;
        Self::from_layers(&embed, &fc, &out)
    }

    /// A head with the given layers, each `(weight, bias)` in torch's layout (`out × in`, `out`):
    /// `embed[h]` is `embd_h` (`w × d`), `fc[h]` is `fc_h` (`w × 2w`) and `out` is `fc`
    /// (`d × H·w`).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`](crate::Error::InvalidSetting) when there is no head, `embed` and `fc` differ in length, or a
    /// layer's shape disagrees with the others; [`Error::Candle`](crate::Error::Candle) if a tensor operation fails.
    pub fn from_layers(
        embed: &[(Tensor, Tensor)],
        fc: &[(Tensor, Tensor)],
        out: &(Tensor, Tensor),
    ) -> Result<Self> {
        let heads = embed.len();
        ensure_positive("featmatch attention heads", heads)?;
        if fc.len() != heads {
            return Err(invalid(
                "featmatch attention layers",
                format!("{heads} fc layers"),
                fc.len(),
            ));
        }
        let (width, dim) = embed.first().map_or(Ok((0, 0)), |(w, _)| w.dims2())?;
        let shape = |what: &'static str, t: &Tensor, dims: &[usize]| -> Result<()> {
            if t.dims() == dims {
                Ok(())
            } else {
                Err(invalid(
                    what,
                    format!("shape {dims:?}"),
                    format!("{:?}", t.dims()),
                ))
            }
        };
        for (w, b) in embed {
            shape("featmatch embd weight", w, &[width, dim])?;
            shape("featmatch embd bias", b, &[width])?;
        }
        for (w, b) in fc {
            shape("featmatch fc_h weight", w, &[width, 2 * width])?;
            shape("featmatch fc_h bias", b, &[width])?;
        }
        shape("featmatch fc weight", &out.0, &[dim, heads * width])?;
        shape("featmatch fc bias", &out.1, &[dim])?;
        let cat = |parts: Vec<&Tensor>| -> Result<Var> {
            Ok(Var::from_tensor(&Tensor::cat(&parts, 0)?.detach())?)
        };
        let stack =
            |parts: Vec<&Tensor>| -> Result<Tensor> { Ok(Tensor::stack(&parts, 0)?.detach()) };
        Ok(Self {
            heads,
            width,
            embed_weight: cat(embed.iter().map(|(w, _)| w).collect())?,
            embed_bias: cat(embed.iter().map(|(_, b)| b).collect())?,
            head_weight: Var::from_tensor(&stack(fc.iter().map(|(w, _)| w).collect())?)?,
            head_bias: Var::from_tensor(
                &stack(fc.iter().map(|(_, b)| b).collect())?.unsqueeze(1)?,
            )?,
            out_weight: Var::from_tensor(&out.0.detach())?,
            out_bias: Var::from_tensor(&out.1.detach())?,
        })
    }

    /// Number of heads `H`.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// The trainable parameters, for the optimiser.
    pub fn vars(&self) -> Vec<Var> {
        vec![
            self.embed_weight.clone(),
            self.embed_bias.clone(),
            self.head_weight.clone(),
            self.head_bias.clone(),
            self.out_weight.clone(),
            self.out_bias.clone(),
        ]
    }

    /// The refined queries `ReLU(x + fc([g_1, …, g_H]))` (`N × d`) of `x` (`N × d`) attending
    /// over `memory` (`M × d`); `dropout`, when given, multiplies the attention weights
    /// elementwise (`H × N × M`, see [`dropout_mask`]), and `None` is the head in eval mode.
    ///
    /// # Errors
    /// [`Error::Candle`](crate::Error::Candle) on mismatched shapes.
    pub fn forward(&self, x: &Tensor, memory: &Tensor, dropout: Option<&Tensor>) -> Result<Tensor> {
        let (n, _) = x.dims2()?;
        let m = memory.dim(0)?;
        let (heads, width) = (self.heads, self.width);
        let embed_weight = self.embed_weight.as_tensor().t()?;
        let embed = |rows: &Tensor, count: usize| -> Result<Tensor> {
            Ok(rows
                .matmul(&embed_weight)?
                .broadcast_add(self.embed_bias.as_tensor())?
                .reshape((count, heads, width))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let fx = embed(x, n)?; // H × N × w
        let fp = embed(memory, m)?; // H × M × w
        let scores = (fx.matmul(&fp.transpose(1, 2)?)? / (width as f64).sqrt())?;
        let mut weights = softmax_rows(&scores)?; // H × N × M
        if let Some(mask) = dropout {
            weights = (weights * mask)?;
        }
        let joined = Tensor::cat(&[weights.matmul(&fp)?, fx], 2)?; // H × N × 2w
        let per_head = joined
            .matmul(&self.head_weight.as_tensor().transpose(1, 2)?)?
            .broadcast_add(self.head_bias.as_tensor())?
            .relu()?; // H × N × w
        let flat = per_head.transpose(0, 1)?.reshape((n, heads * width))?;
        let out = flat
            .matmul(&self.out_weight.as_tensor().t()?)?
            .broadcast_add(self.out_bias.as_tensor())?;
        Ok((x + out)?.relu()?)
    }
}

/// torch's `nn.Dropout(p)` in training mode as a multiplier of shape `dims`: each entry is `0`
/// with probability `p` and `1 / (1 − p)` otherwise, one draw of `rng` per entry in row-major
/// order.
///
/// # Errors
/// [`Error::InvalidSetting`](crate::Error::InvalidSetting) unless `0 ≤ p < 1`; [`Error::Candle`](crate::Error::Candle) if the tensor cannot be made.
pub fn dropout_mask(
    rng: &mut StreamRng,
    dims: (usize, usize, usize),
    p: f64,
    device: &Device,
) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        return Err(invalid("dropout probability", "a number in [0, 1)", p));
    }
    let keep = (1.0 / (1.0 - p)) as f32;
    let count = dims.0 * dims.1 * dims.2;
    let mask: Vec<f32> = (0..count)
        .map(|_| if rng.bernoulli(p) { 0.0 } else { keep })
        .collect();
    Ok(Tensor::from_vec(mask, dims, device)?)
}
