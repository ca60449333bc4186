//! Transport A → B: the encoder's posterior mean c(z_A, z_B), the point T(c) z_A it carries A
//! to, and how well that matches B: the error ‖T(c)z_A − z_B‖² / ‖z_A − z_B‖² (0 is a perfect
//! match, 1 is no better than staying at A).

use crate::engine::Engine;
use crate::error::{Result, ViewerError};
use crate::session::Session;

/// The encoder's transport of gallery image A to image B.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportMatch {
    /// Gallery index of A.
    pub a: usize,
    /// Gallery index of B.
    pub b: usize,
    /// The encoder's posterior mean c(z_A, z_B), M values.
    pub coefficients: Vec<f32>,
    /// ‖T(c)z_A − z_B‖² / ‖z_A − z_B‖²; `None` when z_A = z_B (nothing to transport).
    pub error: Option<f32>,
}

impl TransportMatch {
    /// Computes c(z_A, z_B) and the matching error of T(c) z_A against z_B on `engine`.
    pub async fn compute(engine: &Engine, session: &Session, a: usize, b: usize) -> Result<Self> {
        let coefficients = session.transport_coefficients(a, b)?;
        let missing = |i: usize| {
            ViewerError::Compute(mclr_shared::Error::invalid(
                "image",
                format!("{i} is not below {}", session.len()),
            ))
        };
        let za = session.feature(a).ok_or_else(|| missing(a))?;
        let zb = session.feature(b).ok_or_else(|| missing(b))?;
        let transport = engine.transport(&session.operators, &coefficients).await?;
        let moved = engine.apply(&transport, za).await?;
        Ok(Self {
            a,
            b,
            coefficients,
            error: matching_error(&moved, za, zb),
        })
    }
}

/// ‖moved − z_b‖² / ‖z_a − z_b‖², summed in f64; `None` when z_a = z_b.
pub fn matching_error(moved: &[f32], za: &[f32], zb: &[f32]) -> Option<f32> {
    let squared = |x: &[f32]| -> f64 {
        x.iter()
            .zip(zb)
            .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
            .sum()
    };
    let before = squared(za);
    // The ratio is for display; f32 keeps plenty of digits.
    #[allow(clippy::cast_possible_truncation)]
    (before > 0.0).then(|| (squared(moved) / before) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::{block_on, synthetic_session};

    #[test]
    fn the_error_is_the_direct_relative_squared_distance() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let found = block_on(TransportMatch::compute(&engine, &session, 3, 11)).unwrap();
        let c = session.encoder.as_ref().unwrap();
        let (za, zb) = (session.feature(3).unwrap(), session.feature(11).unwrap());
        let expected_c = c.posterior(za, zb).unwrap().loc;
        assert_eq!(found.coefficients, expected_c);
        let moved = session.operators.apply(&expected_c, za).unwrap();
        let num: f64 = moved
            .iter()
            .zip(zb)
            .map(|(&x, &y)| f64::from(x - y) * f64::from(x - y))
            .sum();
        let den: f64 = za
            .iter()
            .zip(zb)
            .map(|(&x, &y)| f64::from(x - y) * f64::from(x - y))
            .sum();
        let error = found.error.unwrap();
        assert!(
            (f64::from(error) - num / den).abs() < 1e-5 * (num / den).max(1.0),
            "{error} vs {}",
            num / den
        );
    }

    #[test]
    fn a_to_itself_has_no_error_ratio() {
        let session = synthetic_session();
        let engine = Engine::cpu("test");
        let found = block_on(TransportMatch::compute(&engine, &session, 5, 5)).unwrap();
        assert_eq!(found.error, None);
        assert_eq!(
            matching_error(&[1.0, 2.0], &[0.0, 0.0], &[1.0, 0.0]),
            Some(4.0)
        );
    }
}
