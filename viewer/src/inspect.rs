//! Inspecting one operator: a coordinate sweep — the anchor moved by T(t·e_m) for evenly spaced
//! t ∈ [−T, T] and the nearest gallery image at each t — and the class × operator heatmap the
//! bundle precomputed.

use crate::engine::{Engine, GalleryIndex};
use crate::error::{Result, ViewerError};
use crate::session::Session;

/// Points of a sweep (odd, so that t = 0 is one of them).
pub const SWEEP_STEPS: usize = 9;

/// The nearest gallery image along operator m's one-parameter group through the anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The operator swept.
    pub operator: usize,
    /// The times t, ascending from −T to T.
    pub times: Vec<f32>,
    /// Nearest gallery image (cosine) of T(t·e_m) z0 for each t.
    pub nearest: Vec<usize>,
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
        for (z, &nearest) in zs.chunks_exact(session.dim()).zip(&sweep.nearest) {
            assert_eq!(nearest, index.search(z, 1).unwrap()[0].index);
        }
        // At t = 0 the anchor is its own nearest image.
        assert_eq!(sweep.nearest[2], 4);
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
