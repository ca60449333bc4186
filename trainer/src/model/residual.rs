//! The end of a residual block, `relu(h + shortcut)`, as one pass forward and one backward on the
//! CPU. candle's version is four passes over the activations forward (add, relu) and backward
//! (the ReLU's mask built from comparisons and casts, then a multiply), at every block.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::matmul::{Element, contiguous_values};

/// `relu(a + b)` for tensors of one shape, differentiable with respect to both.
///
/// # Errors
/// If the shapes or dtypes differ.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() {
        bail!("add_relu: shapes differ, {:?} and {:?}", a.dims(), b.dims());
    }
    if a.device().is_cpu() && matches!(a.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    {
        a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
    } else {
        (a + b)?.relu()
    }
}

/// Values above which parallel loops split the work.
const CHUNK: usize = 1 << 14;

/// Runs `f(out, a, b)` chunk by chunk in parallel over three equal-length slices.
fn zip_map<T: Element>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Result<Vec<T>> {
    if a.len() != b.len() {
        bail!(
            "add_relu: arguments hold {} and {} values",
            a.len(),
            b.len()
        );
    }
    let mut out = vec![T::ZERO; a.len()];
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
        });
    Ok(out)
}

fn relu_sum<T: Element>(a: T, b: T) -> T {
    let v = a + b;
    if v.to_f64() > 0.0 { v } else { T::ZERO }
}

fn pass_where_open<T: Element>(y: T, dy: T) -> T {
    if y.to_f64() > 0.0 { dy } else { T::ZERO }
}

/// (a, b) → relu(a + b).
struct AddRelu;

/// (y, dy) → dy where y > 0, else 0: the gradient both inputs of [`AddRelu`] receive.
struct ReluGrad;

macro_rules! float_op2 {
    ($op:ty, $name:literal, $f:ident) => {
        impl $op {
            fn run(
                s1: &CpuStorage,
                l1: &Layout,
                s2: &CpuStorage,
                l2: &Layout,
            ) -> Result<CpuStorage> {
                Ok(match (s1, s2) {
                    (CpuStorage::F32(a), CpuStorage::F32(b)) => CpuStorage::F32(zip_map(
                        contiguous_values(a, l1, "add_relu")?,
                        contiguous_values(b, l2, "add_relu")?,
                        $f,
                    )?),
                    (CpuStorage::F64(a), CpuStorage::F64(b)) => CpuStorage::F64(zip_map(
                        contiguous_values(a, l1, "add_relu")?,
                        contiguous_values(b, l2, "add_relu")?,
                        $f,
                    )?),
                    _ => bail!(concat!($name, ": arguments must both be f32 or both f64")),
                })
            }
        }
    };
}
float_op2!(AddRelu, "add_relu", relu_sum);
float_op2!(ReluGrad, "add_relu backward", pass_where_open);

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "mclr-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((Self::run(s1, l1, s2, l2)?, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = y.apply_op2_no_bwd(&dy.contiguous()?, &ReluGrad)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "mclr-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((Self::run(s1, l1, s2, l2)?, l1.shape().clone()))
    }
}
