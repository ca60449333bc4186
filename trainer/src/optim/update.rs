//! One AdamW update of one parameter: the fused single-pass kernel for f32 CPU tensors and the
//! composite candle version for every other device and dtype, bit-identical where both apply.

use candle_core::{Result, Tensor, Var};

use super::{AdamW, ParamState};

/// One AdamW update of one parameter with its (already clipped, detached) gradient.
pub(super) fn update_param(
    var: &Var,
    state: &mut ParamState,
    grad: &Tensor,
    lr: f64,
    weight_decay: f64,
) -> Result<()> {
    let (beta1, beta2) = (AdamW::BETA1, AdamW::BETA2);
    let step = state.step + 1;
    let t = step as f64;
    let step_size = lr / (1.0 - beta1.powf(t));
    let bias_correction2_sqrt = (1.0 - beta2.powf(t)).sqrt();

    let coefficients = UpdateCoefficients {
        lr,
        weight_decay,
        step_size,
        bias_correction2_sqrt,
    };
    let (next, m, v) = match fused_update(var.as_tensor(), &state.m, &state.v, grad, coefficients) {
        Some((next, m, v)) => {
            let tensor = |values| Tensor::from_vec(values, var.shape(), var.device());
            (tensor(next)?, tensor(m)?, tensor(v)?)
        }
        None => composite_update(var.as_tensor(), &state.m, &state.v, grad, coefficients)?,
    };
    var.set(&next)?;
    state.m = m.detach();
    state.v = v.detach();
    state.step = step;
    Ok(())
}

/// The scalars of one AdamW update.
#[derive(Debug, Clone, Copy)]
struct UpdateCoefficients {
    lr: f64,
    weight_decay: f64,
    step_size: f64,
    bias_correction2_sqrt: f64,
}

/// The AdamW update from candle ops, on any device and dtype: (parameter, m, v) after the step.
fn composite_update(
    param: &Tensor,
    m: &Tensor,
    v: &Tensor,
    grad: &Tensor,
    c: UpdateCoefficients,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (beta1, beta2) = (AdamW::BETA1, AdamW::BETA2);
    let decayed = param.affine(1.0 - c.lr * c.weight_decay, 0.0)?;
    let m = ((m * beta1)? + (grad * (1.0 - beta1))?)?;
    let v = ((v * beta2)? + (grad.sqr()? * (1.0 - beta2))?)?;
    let denom = ((v.sqrt()? / c.bias_correction2_sqrt)? + AdamW::EPS)?;
    let next = (decayed - ((&m / &denom)? * c.step_size)?)?;
    Ok((next, m, v))
}

/// The update of [`update_param`] in one pass over contiguous f32 CPU tensors: the new parameter,
/// first and second moments. The arithmetic is the composite version's, operation for operation
/// in the same order and precision (candle's scalar ops compute `x·f32(mul) + f32(add)`), so the
/// results are bit-identical; it only saves the ten intermediate tensors. `None` when a tensor is
/// not an f32 CPU tensor with a contiguous layout, and the composite version runs.
fn fused_update(
    param: &Tensor,
    m: &Tensor,
    v: &Tensor,
    grad: &Tensor,
    c: UpdateCoefficients,
) -> Option<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    use candle_core::{CpuStorage, Storage};
    use rayon::prelude::*;
    let guards = [param, m, v, grad].map(Tensor::storage_and_layout);
    let mut slices: Vec<&[f32]> = Vec::with_capacity(4);
    for (storage, layout) in &guards {
        let Storage::Cpu(CpuStorage::F32(values)) = &**storage else {
            return None;
        };
        let (start, end) = layout.contiguous_offsets()?;
        slices.push(values.get(start..end)?);
    }
    let [p, m, v, g] = slices[..] else {
        return None;
    };
    if m.len() != p.len() || v.len() != p.len() || g.len() != p.len() {
        return None;
    }
    let f = |x: f64| x as f32;
    let (decay, b1, c1, b2, c2) = (
        f(1.0 - c.lr * c.weight_decay),
        f(AdamW::BETA1),
        f(1.0 - AdamW::BETA1),
        f(AdamW::BETA2),
        f(1.0 - AdamW::BETA2),
    );
    let (inv_bc2, eps, step) = (
        f(1.0 / c.bias_correction2_sqrt),
        f(AdamW::EPS),
        f(c.step_size),
    );
    let mut out = (
        vec![0.0f32; p.len()],
        vec![0.0f32; p.len()],
        vec![0.0f32; p.len()],
    );
    const CHUNK: usize = 1 << 14;
    out.0
        .par_chunks_mut(CHUNK)
        .zip(out.1.par_chunks_mut(CHUNK).zip(out.2.par_chunks_mut(CHUNK)))
        .enumerate()
        .for_each(|(i, (next, (m_out, v_out)))| {
            let range = i * CHUNK..(i * CHUNK + next.len());
            let (p, m, v, g) = (
                &p[range.clone()],
                &m[range.clone()],
                &v[range.clone()],
                &g[range],
            );
            for j in 0..next.len() {
                let decayed = p[j] * decay + 0.0;
                let m_new = (m[j] * b1 + 0.0) + (g[j] * c1 + 0.0);
                let v_new = (v[j] * b2 + 0.0) + ((g[j] * g[j]) * c2 + 0.0);
                let denom = ((v_new.sqrt() * inv_bc2 + 0.0) * 1.0) + eps;
                next[j] = decayed - ((m_new / denom) * step + 0.0);
                m_out[j] = m_new;
                v_out[j] = v_new;
            }
        });
    Some(out)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;

    #[test]
    fn fused_update_is_bit_identical_to_the_composite_update() -> Result<()> {
        let n = 40_000; // more than one parallel chunk
        let values = |seed: u32| -> Vec<f32> {
            let mut s = seed;
            (0..n)
                .map(|_| {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect()
        };
        let t = |v: Vec<f32>| Tensor::from_vec(v, n, &Device::Cpu);
        let (p, g) = (t(values(1))?, t(values(2))?);
        let m = t(values(3))?;
        let v = t(values(4).iter().map(|x| x.abs()).collect())?;
        let c = UpdateCoefficients {
            lr: 3e-3,
            weight_decay: 1e-5,
            step_size: 3e-3 / (1.0 - 0.9f64.powi(7)),
            bias_correction2_sqrt: (1.0 - 0.999f64.powi(7)).sqrt(),
        };
        let Some((next, m1, v1)) = fused_update(&p, &m, &v, &g, c) else {
            panic!("the fused path should apply to contiguous f32 CPU tensors");
        };
        let (next_ref, m_ref, v_ref) = composite_update(&p, &m, &v, &g, c)?;
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&next), bits(&next_ref.to_vec1::<f32>()?));
        assert_eq!(bits(&m1), bits(&m_ref.to_vec1::<f32>()?));
        assert_eq!(bits(&v1), bits(&v_ref.to_vec1::<f32>()?));
        // Another dtype takes the composite path.
        assert!(fused_update(&p.to_dtype(DType::F64)?, &m, &v, &g, c).is_none());
        Ok(())
    }
}
