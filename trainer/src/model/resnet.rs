//! The ResNet-18 backbone (docs/method.md §4): images (B, 3, H, W) to features (B, 8w), where w is the base
//! width (64 in the paper, so 512-d features; a smaller w such as 16 makes CPU-sized runs).
//!
//! Architecture, as torchvision's `resnet18` with the CIFAR stem and without `fc`:
//! * stem: 3×3 conv (stride 1, pad 1, no bias), BatchNorm, ReLU, and for 64-px inputs a 3×3 max-pool
//!   with stride 2 and pad 1 (see [`Stem`]);
//! * four stages of two [`BasicBlock`]s each, widths w·(1, 2, 4, 8); the first block of stages 2–4
//!   downsamples with stride 2 and a 1×1 conv + BatchNorm shortcut;
//! * global average pooling. There is no classifier: evaluation trains its own on frozen features
//!   (docs/method.md §10).
//!
//! Parameters are registered under [`VAR_PREFIX`] with torchvision's names (`backbone.conv1.weight`,
//! `backbone.layer2.0.downsample.1.running_var`, ...), so checkpoints read like a torch state dict
//! and the optimiser can group them by prefix. Initialisation is torchvision's: Kaiming-normal with
//! fan-out for convolutions, weight 1 and bias 0 for BatchNorm; except the stem conv, which has
//! PyTorch's default conv init as in the reference ([`Stem::conv_init`]).

use candle_core::{Result, Tensor, bail};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Init, ModuleT, VarBuilder};

use super::Kernels;
use super::batch_norm::BatchNorm;
use super::conv::conv2d;
use super::residual::add_relu;

/// Prefix of every backbone variable in the [`candle_nn::VarMap`] (the optimiser's parameter group
/// "backbone").
pub const VAR_PREFIX: &str = "backbone";
/// The paper's base width: stages of 64, 128, 256 and 512 channels and 512-d features.
pub const PAPER_BASE_WIDTH: usize = 64;
/// BasicBlocks per stage in ResNet-18.
pub const BLOCKS_PER_STAGE: [usize; 4] = [2, 2, 2, 2];
/// Channel multiplier of each stage relative to the base width.
pub const STAGE_MULTIPLIERS: [usize; 4] = [1, 2, 4, 8];
/// Input channels (RGB).
pub const INPUT_CHANNELS: usize = 3;

/// torchvision's init for convolutions followed by ReLU: normal with std √(2 / fan_out), where
/// fan_out = out_channels · kernel height · kernel width.
const CONV_INIT: Init = Init::Kaiming {
    dist: NormalOrUniform::Normal,
    fan: FanInOut::FanOut,
    non_linearity: NonLinearity::ReLU,
};

/// The first layers, which differ with the input resolution. The convolution is the same in both:
/// the reference replaces torchvision's 7×7 `conv1` with a 3×3 one for every dataset
/// (`src/model/backbone.py`) and removes the max-pool only for CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stem {
    /// 3×3 conv, stride 1, pad 1, no max-pool: the CIFAR stem for 32-px inputs. The backbone's
    /// feature maps are 32, 16, 8 and 4 px in stages 1–4.
    Conv3x3,
    /// The same conv, then 3×3 max-pool with stride 2 and pad 1: the stem for 64-px inputs
    /// (STL-10, Tiny ImageNet), which halves the resolution once.
    Conv3x3MaxPool,
}

impl Stem {
    /// Kernel size of the stem convolution (stride 1, padding 1).
    pub const KERNEL: usize = 3;

    /// The stem for square inputs of `image_px` pixels: no max-pool up to 32 px (CIFAR), the
    /// max-pool above (64-px STL-10 and Tiny ImageNet crops).
    pub fn for_image_size(image_px: usize) -> Self {
        if image_px <= 32 {
            Self::Conv3x3
        } else {
            Self::Conv3x3MaxPool
        }
    }

    /// Whether the stem ends with the 3×3, stride-2 max-pool.
    pub fn has_max_pool(self) -> bool {
        matches!(self, Self::Conv3x3MaxPool)
    }

    /// The stem convolution's initialisation: PyTorch's default for `nn.Conv2d`, uniform in
    /// ±1/√fan_in with fan_in = 3·3·3 = 27. The reference creates this conv after torchvision's
    /// init loop has run, so unlike every other conv it does not get the Kaiming-normal init.
    pub fn conv_init() -> Init {
        let bound = 1.0 / ((INPUT_CHANNELS * Self::KERNEL * Self::KERNEL) as f64).sqrt();
        Init::Uniform {
            lo: -bound,
            up: bound,
        }
    }
}

/// Shape of a ResNet-18 backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResNetConfig {
    /// Channels of the first stage, w; the stages have w·(1, 2, 4, 8) and the features 8w.
    pub base_width: usize,
    /// The layers before the first stage.
    pub stem: Stem,
}

impl ResNetConfig {
    /// The paper's backbone for `image_px`-pixel inputs: base width 64 and [`Stem::for_image_size`].
    pub fn paper(image_px: usize) -> Self {
        Self {
            base_width: PAPER_BASE_WIDTH,
            stem: Stem::for_image_size(image_px),
        }
    }

    /// Channels of each of the four stages.
    pub fn stage_widths(&self) -> [usize; 4] {
        STAGE_MULTIPLIERS.map(|m| m * self.base_width)
    }

    /// Dimension of the output features, 8w (512 at the paper's w = 64).
    pub fn feature_dim(&self) -> usize {
        STAGE_MULTIPLIERS[3] * self.base_width
    }
}

impl Default for ResNetConfig {
    /// The paper's CIFAR-10 backbone: base width 64, 3×3 stem without max-pool.
    fn default() -> Self {
        Self::paper(32)
    }
}

/// A bias-free square convolution (see [`conv2d`]).
#[derive(Debug, Clone)]
struct Conv {
    weight: Tensor,
    stride: usize,
    padding: usize,
    kernels: Kernels,
}

impl Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, &self.weight)
    }

    /// The convolution with a detached weight: nothing is recorded for backpropagation.
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(&x.detach(), &self.weight.detach())
    }

    fn apply(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        match self.kernels {
            Kernels::Fast => conv2d(x, weight, self.stride, self.padding),
            Kernels::Reference => x.conv2d(weight, self.padding, self.stride, 1, 1),
        }
    }
}

/// A bias-free convolution with torchvision's init, its weight named `weight` under `vb`.
fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    vb: &VarBuilder<'_>,
) -> Result<Conv> {
    conv_with_init(
        in_channels,
        out_channels,
        kernel,
        stride,
        padding,
        CONV_INIT,
        vb,
    )
}

/// A bias-free convolution initialised with `init`, its weight named `weight` under `vb`.
fn conv_with_init(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    init: Init,
    vb: &VarBuilder<'_>,
) -> Result<Conv> {
    let weight = vb.get_with_hints((out_channels, in_channels, kernel, kernel), "weight", init)?;
    Ok(Conv {
        weight,
        stride,
        padding,
        kernels: Kernels::default(),
    })
}

/// ResNet's residual block of two 3×3 convolutions (torchvision's `BasicBlock`):
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, where the shortcut is the identity, or a
/// 1×1 conv + BatchNorm when the block changes the stride or the width.
#[derive(Debug, Clone)]
pub struct BasicBlock {
    kernels: Kernels,
    conv1: Conv,
    bn1: BatchNorm,
    conv2: Conv,
    bn2: BatchNorm,
    downsample: Option<(Conv, BatchNorm)>,
}

impl BasicBlock {
    /// A block from `in_channels` to `out_channels` whose first convolution has `stride`;
    /// variables `conv1`, `bn1`, `conv2`, `bn2` and, when needed, `downsample.0` (conv) and
    /// `downsample.1` (BatchNorm) under `vb`.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "candle-nn's convention: layer constructors take their VarBuilder by value"
    )]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let downsample = if stride != 1 || in_channels != out_channels {
            let vb = vb.pp("downsample");
            Some((
                conv(in_channels, out_channels, 1, stride, 0, &vb.pp("0"))?,
                BatchNorm::new(out_channels, vb.pp("1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            kernels: Kernels::default(),
            conv1: conv(in_channels, out_channels, 3, stride, 1, &vb.pp("conv1"))?,
            bn1: BatchNorm::new(out_channels, vb.pp("bn1"))?,
            conv2: conv(out_channels, out_channels, 3, 1, 1, &vb.pp("conv2"))?,
            bn2: BatchNorm::new(out_channels, vb.pp("bn2"))?,
            downsample,
        })
    }

    /// Ghost batch norm in the block's BatchNorm layers (see [`BatchNorm::set_group`]).
    fn set_bn_group(&mut self, group: Option<usize>) {
        self.bn1.set_group(group);
        self.bn2.set_group(group);
        if let Some((_, bn)) = &mut self.downsample {
            bn.set_group(group);
        }
    }

    /// Chooses the layers' CPU implementation (see [`Kernels`]).
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
        for conv in [&mut self.conv1, &mut self.conv2] {
            conv.kernels = kernels;
        }
        self.bn1.set_kernels(kernels);
        self.bn2.set_kernels(kernels);
        if let Some((conv, bn)) = &mut self.downsample {
            conv.kernels = kernels;
            bn.set_kernels(kernels);
        }
    }
}

impl BasicBlock {
    /// [`ModuleT::forward_t`] in evaluation mode, for inference (see [`ResNet::infer`]).
    fn infer(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.bn1.infer(&self.conv1.infer(x)?, true)?;
        let h = self.bn2.infer(&self.conv2.infer(&h)?, false)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.infer(&conv.infer(x)?, false)?,
            None => x.detach(),
        };
        (h + shortcut)?.relu()
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.bn1.forward_act(&self.conv1.forward(x)?, train, true)?;
        let h = self.bn2.forward_t(&self.conv2.forward(&h)?, train)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train)?,
            None => x.clone(),
        };
        match self.kernels {
            Kernels::Fast => add_relu(&h, &shortcut),
            Kernels::Reference => (h + shortcut)?.relu(),
        }
    }
}

/// The ResNet-18 backbone without its classifier. See the module documentation.
#[derive(Debug, Clone)]
pub struct ResNet {
    config: ResNetConfig,
    conv1: Conv,
    bn1: BatchNorm,
    stages: Vec<Vec<BasicBlock>>,
}

impl ResNet {
    /// Builds the backbone, registering (or, with a pre-filled map, reading) its variables under
    /// [`VAR_PREFIX`] in `vb`'s store. Fails if the base width is 0 or a stored variable has the
    /// wrong shape.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "candle-nn's convention: layer constructors take their VarBuilder by value"
    )]
    pub fn new(config: ResNetConfig, vb: VarBuilder<'_>) -> Result<Self> {
        if config.base_width == 0 {
            bail!("ResNet base width must be at least 1");
        }
        let vb = vb.pp(VAR_PREFIX);
        let widths = config.stage_widths();
        let conv1 = conv_with_init(
            INPUT_CHANNELS,
            widths[0],
            Stem::KERNEL,
            1,
            1,
            Stem::conv_init(),
            &vb.pp("conv1"),
        )?;
        let bn1 = BatchNorm::new(widths[0], vb.pp("bn1"))?;
        let mut stages = Vec::with_capacity(widths.len());
        let mut in_channels = widths[0];
        for (i, (&width, &blocks)) in widths.iter().zip(&BLOCKS_PER_STAGE).enumerate() {
            let vb = vb.pp(format!("layer{}", i + 1));
            let first_stride = if i == 0 { 1 } else { 2 };
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if b == 0 { first_stride } else { 1 };
                stage.push(BasicBlock::new(
                    in_channels,
                    width,
                    stride,
                    vb.pp(b.to_string()),
                )?);
                in_channels = width;
            }
            stages.push(stage);
        }
        Ok(Self {
            config,
            conv1,
            bn1,
            stages,
        })
    }

    /// The configuration the backbone was built with.
    pub fn config(&self) -> ResNetConfig {
        self.config
    }

    /// Dimension of the output features, 8w.
    pub fn feature_dim(&self) -> usize {
        self.config.feature_dim()
    }

    /// Features (B, 8w) of images (B, 3, H, W) in evaluation mode, for inference: the same values
    /// as `forward_t(x, false)`, computed without recording anything for backpropagation, so each
    /// layer's activations are freed as soon as the next one is computed (the evaluation
    /// protocols and export extract features of whole datasets this way).
    pub fn infer(&self, x: &Tensor) -> Result<Tensor> {
        check_images(x)?;
        let mut h = self.bn1.infer(&self.conv1.infer(x)?, true)?;
        if self.config.stem.has_max_pool() {
            h = max_pool_3x3_stride2_pad1(&h)?;
        }
        for block in self.stages.iter().flatten() {
            h = block.infer(&h)?;
        }
        h.mean((2, 3))
    }

    /// Chooses the layers' CPU implementation (see [`Kernels`]).
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.conv1.kernels = kernels;
        self.bn1.set_kernels(kernels);
        for block in self.stages.iter_mut().flatten() {
            block.set_kernels(kernels);
        }
    }

    /// Ghost batch norm in every BatchNorm layer: groups of `group` images in training (see
    /// [`BatchNorm::set_group`]); `None` for whole-batch statistics.
    pub fn set_bn_group(&mut self, group: Option<usize>) {
        self.bn1.set_group(group);
        for block in self.stages.iter_mut().flatten() {
            block.set_bn_group(group);
        }
    }
}

impl ModuleT for ResNet {
    /// Features (B, 8w) of images (B, 3, H, W). `train` selects BatchNorm's mode: batch
    /// statistics and running-statistics updates in training, running statistics in evaluation.
    /// Each call normalises its own batch, so two views passed separately get their own statistics
    /// (docs/method.md §4).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        check_images(x)?;
        let mut h = self.bn1.forward_act(&self.conv1.forward(x)?, train, true)?;
        if self.config.stem.has_max_pool() {
            h = max_pool_3x3_stride2_pad1(&h)?;
        }
        for block in self.stages.iter().flatten() {
            h = block.forward_t(&h, train)?;
        }
        h.mean((2, 3))
    }
}

/// Fails unless `x` is a batch of RGB images (B, 3, H, W) with H, W ≥ 1.
fn check_images(x: &Tensor) -> Result<()> {
    let (_, channels, height, width) = x.dims4()?;
    if channels != INPUT_CHANNELS || height == 0 || width == 0 {
        bail!(
            "ResNet expects images (B, {INPUT_CHANNELS}, H, W), got {:?}",
            x.dims()
        );
    }
    Ok(())
}

/// `torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1)` on (B, C, H, W): out = ⌊(L − 1)/2⌋ + 1
/// per spatial axis, padding with −∞.
///
/// candle's own max-pool has no padding, and no backward pass when the window (3) differs from the
/// stride (2), so the pool is built from differentiable pieces: one 1-D pass per axis, each the
/// elementwise maximum of the three strided taps of every window. Where several taps hold the
/// maximum, the gradient is shared among them instead of going to the first one as in torch;
/// after a ReLU such ties are zeros whose ReLU gradient vanishes anyway.
fn max_pool_3x3_stride2_pad1(x: &Tensor) -> Result<Tensor> {
    let h = max_pool_1d_3_2_1(x, 2)?;
    max_pool_1d_3_2_1(&h, 3)
}

/// Window 3, stride 2, padding 1 max-pool along `dim` of `x`.
///
/// With L inputs there are n = ⌊(L − 1)/2⌋ + 1 outputs; output i covers padded positions 2i, 2i + 1
/// and 2i + 2 (input positions 2i − 1, 2i, 2i + 1). Padding to 2(n + 1) positions (1 in front, the
/// rest behind) and splitting the axis into (n + 1, 2) turns the three taps into contiguous
/// narrows: (i, 0), (i, 1) and (i + 1, 0).
fn max_pool_1d_3_2_1(x: &Tensor, dim: usize) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some(&len) = dims.get(dim) else {
        bail!("max-pool axis {dim} out of range for shape {dims:?}");
    };
    if len == 0 {
        bail!("max-pool over an empty axis {dim} of shape {dims:?}");
    }
    let out = (len - 1) / 2 + 1;
    let padded_len = 2 * (out + 1);
    let pad = |n: usize| -> Result<Tensor> {
        let mut shape = dims.clone();
        shape[dim] = n;
        Tensor::full(f64::NEG_INFINITY, shape, x.device())?.to_dtype(x.dtype())
    };
    let padded = Tensor::cat(&[&pad(1)?, x, &pad(padded_len - 1 - len)?], dim)?;
    let mut split = dims[..dim].to_vec();
    split.extend([out + 1, 2]);
    split.extend(&dims[dim + 1..]);
    let pairs = padded.reshape(split)?;
    let even = pairs.narrow(dim + 1, 0, 1)?;
    let odd = pairs.narrow(dim + 1, 1, 1)?;
    let max = even
        .narrow(dim, 0, out)?
        .maximum(&odd.narrow(dim, 0, out)?)?
        .maximum(&even.narrow(dim, 1, out)?)?;
    max.squeeze(dim + 1)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;

    /// Naive −∞-padded 3×3 / stride 2 / pad 1 max-pool over (C, H, W) values.
    fn naive_pool(x: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
        let (ho, wo) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let mut out = Vec::new();
        for ch in 0..c {
            for i in 0..ho {
                for j in 0..wo {
                    let mut m = f32::NEG_INFINITY;
                    for di in 0..3 {
                        for dj in 0..3 {
                            let (r, s) = ((2 * i + di) as isize - 1, (2 * j + dj) as isize - 1);
                            if (0..h as isize).contains(&r) && (0..w as isize).contains(&s) {
                                m = m.max(x[(ch * h + r as usize) * w + s as usize]);
                            }
                        }
                    }
                    out.push(m);
                }
            }
        }
        out
    }

    #[test]
    fn max_pool_matches_torch_geometry_for_even_and_odd_sizes() {
        for (h, w) in [(8, 8), (7, 5), (1, 2), (2, 1), (64, 3)] {
            let n = 2 * h * w;
            // Distinct values in a scrambled order, negative ones included.
            let values: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % n) as f32 - n as f32 / 2.0)
                .collect();
            let x = Tensor::from_vec(values.clone(), (1, 2, h, w), &Device::Cpu).unwrap();
            let got = max_pool_3x3_stride2_pad1(&x).unwrap();
            assert_eq!(got.dims(), &[1, 2, (h - 1) / 2 + 1, (w - 1) / 2 + 1]);
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(got, naive_pool(&values, 2, h, w), "size {h}×{w}");
        }
    }

    #[test]
    fn max_pool_gradient_reaches_each_window_maximum() {
        // Distinct values: every output's gradient goes to exactly its argmax (overlapping windows
        // can share one), so the input gradient counts how many windows each element wins.
        let (h, w) = (5, 6);
        let values: Vec<f32> = (0..h * w).map(|i| ((i * 7) % (h * w)) as f32).collect();
        let x = Var::from_vec(values.clone(), (1, 1, h, w), &Device::Cpu).unwrap();
        let y = max_pool_3x3_stride2_pad1(x.as_tensor()).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut wins = vec![0.0f32; h * w];
        for i in 0..(h - 1) / 2 + 1 {
            for j in 0..(w - 1) / 2 + 1 {
                let mut best = (f32::NEG_INFINITY, 0);
                for r in (2 * i).saturating_sub(1)..(2 * i + 2).min(h) {
                    for s in (2 * j).saturating_sub(1)..(2 * j + 2).min(w) {
                        if values[r * w + s] > best.0 {
                            best = (values[r * w + s], r * w + s);
                        }
                    }
                }
                wins[best.1] += 1.0;
            }
        }
        assert_eq!(g, wins);
        assert_eq!(x.dtype(), DType::F32);
    }
}
