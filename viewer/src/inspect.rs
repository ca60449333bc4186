//! Inspecting one operator: the eigenvalues of each of its K blocks (what it rotates and how
//! fast, what it scales), a coordinate sweep — the anchor moved by T(t·e_m) for evenly spaced
//! t ∈ [−T, T], every coordinate of it and the nearest gallery image at each t — and the class ×
//! operator heatmap the bundle precomputed.

use mclr_shared::geometry::eigenvalues_general;
use mclr_shared::operators::Operators;

use crate::engine::{Engine, GalleryIndex};
use crate::error::{Result, ViewerError};
use crate::session::Session;

/// Nearest-image tiles of a sweep (odd, so that t = 0 is one of them).
pub const SWEEP_STEPS: usize = 9;
/// Points of a sweep's coordinate lines: [`SWEEP_STEPS`] tiles with three points between each.
pub const SWEEP_POINTS: usize = 4 * (SWEEP_STEPS - 1) + 1;

/// The eigenvalues (re, im) of each block Ψ_{m,k}, k = 0..K, of operator `m`.
///
/// # Errors
/// [`ViewerError::Compute`] when `m` is not below M, or when the solver fails on a block.
pub fn operator_spectrum(operators: &Operators, m: usize) -> Result<Vec<Vec<(f64, f64)>>> {
    let n = operators.block_size();
    (0..operators.blocks())
        .map(|k| {
            let block = operators.generator(m, k).ok_or_else(|| {
                ViewerError::Compute(mclr_shared::Error::invalid(
                    "operator",
                    format!("{m} is not below {}", operators.num_operators()),
                ))
            })?;
            let block: Vec<f64> = block.iter().map(|&x| f64::from(x)).collect();
            Ok(eigenvalues_general(&block, n)?)
        })
        .collect()
}

/// The nearest gallery image along operator m's one-parameter group through the anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The operator swept.
    pub operator: usize,
    /// The times t, ascending from −T to T.
    pub times: Vec<f32>,
    /// Nearest gallery image (cosine) of T(t·e_m) z0 for each t.
    pub nearest: Vec<usize>,
    /// T(t·e_m) z0 for each t, steps × d, row-major.
    pub positions: Vec<f32>,
}

impl Sweep {
    /// Sweeps operator `operator` through gallery image `anchor` at `steps` times in
    /// [−`t_range`, `t_range`].
    pub async fn run(
        engine: &Engine,
        session: &Session,
        gallery: &GalleryIndex,
        anchor: usize,
        operator: usize,
        t_range: f32,
        steps: usize,
    ) -> Result<Self> {
        let m = session.num_operators();
        let invalid = |field: &str, reason: String| {
            ViewerError::Compute(mclr_shared::Error::invalid(field, reason))
        };
        if operator >= m {
            return Err(invalid("operator", format!("{operator} is not below {m}")));
        }
        let z0 = session
            .feature(anchor)
            .ok_or_else(|| invalid("anchor", format!("{anchor} is not below {}", session.len())))?;
        let steps = steps.max(2);
        // Step counts are small; the division is exact enough for display times.
        #[allow(clippy::cast_precision_loss)]
        let times: Vec<f32> = (0..steps)
            .map(|i| -t_range + 2.0 * t_range * i as f32 / (steps - 1) as f32)
            .collect();
        let mut coefficients = vec![0.0; steps * m];
        for (row, &t) in coefficients.chunks_exact_mut(m).zip(&times) {
            if let Some(c) = row.get_mut(operator) {
                *c = t;
            }
        }
        let transport = engine.transport(&session.operators, &coefficients).await?;
        let moved = engine.apply(&transport, z0).await?;
        let nearest = engine
            .knn(gallery, &moved, 1)
            .await?
            .into_iter()
            .map(|hits| hits.first().map_or(usize::MAX, |n| n.index))
            .collect();
        Ok(Self {
            operator,
            times,
            nearest,
            positions: moved,
        })
    }
}

#[cfg(test)]
mod tests {
    use mclr_shared::geometry::{KnnIndex, Metric};
    use mclr_shared::operators::path;

    use super::*;
    use crate::engine::tests::{block_on, synthetic_session};

    #[test]
    fn a_sweep_is_the_shared_path_along_one_operator_with_its_nearest_images() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let gallery = engine
            .upload_gallery(&session.features, session.dim())
            .unwrap();
        let sweep = block_on(Sweep::run(&engine, &session, &gallery, 4, 2, 1.5, 5)).unwrap();
        assert_eq!(sweep.times, vec![-1.5, -0.75, 0.0, 0.75, 1.5]);

        let mut c = vec![0.0; session.num_operators()];
        c[2] = 1.0;
        let z0 = session.feature(4).unwrap();
        let zs = path(&session.operators, &c, z0, &sweep.times).unwrap();
        let index = KnnIndex::new(session.features.clone(), session.dim(), Metric::Cosine).unwrap();
        assert_eq!(sweep.positions.len(), zs.len());
        for (p, z) in sweep.positions.iter().zip(&zs) {
            assert!((p - z).abs() < 1e-5, "{p} vs {z}");
        }
        for (z, &nearest) in zs.chunks_exact(session.dim()).zip(&sweep.nearest) {
            assert_eq!(nearest, index.search(z, 1).unwrap()[0].index);
        }
        // At t = 0 the anchor is its own nearest image.
        assert_eq!(sweep.nearest[2], 4);
    }

    #[test]
    fn block_spectra_keep_each_blocks_trace_and_determinant() {
        let session = synthetic_session();
        let ops = &session.operators;
        let n = ops.block_size();
        for m in 0..ops.num_operators() {
            let spectra = operator_spectrum(ops, m).unwrap();
            assert_eq!(spectra.len(), ops.blocks());
            for (k, values) in spectra.iter().enumerate() {
                assert_eq!(values.len(), n);
                let block: Vec<f64> = ops
                    .generator(m, k)
                    .unwrap()
                    .iter()
                    .map(|&x| f64::from(x))
                    .collect();
                let trace: f64 = (0..n).map(|i| block[i * n + i]).sum();
                let sum: f64 = values.iter().map(|v| v.0).sum();
                assert!((trace - sum).abs() < 1e-9, "trace {trace} vs {sum}");
                if n == 2 {
                    // Closed form: λ = tr/2 ± sqrt(tr²/4 − det).
                    let det = block[0] * block[3] - block[1] * block[2];
                    let disc = trace * trace / 4.0 - det;
                    let top = if disc >= 0.0 {
                        (trace / 2.0 + disc.sqrt(), 0.0)
                    } else {
                        (trace / 2.0, (-disc).sqrt())
                    };
                    assert!((values[0].0 - top.0).abs() < 1e-9);
                    assert!((values[0].1 - top.1).abs() < 1e-9);
                }
            }
        }
        assert!(operator_spectrum(ops, ops.num_operators()).is_err());
    }

    #[test]
    fn an_operator_past_m_is_an_error() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let gallery = engine
            .upload_gallery(&session.features, session.dim())
            .unwrap();
        assert!(block_on(Sweep::run(&engine, &session, &gallery, 0, 99, 1.0, 5)).is_err());
    }
}
