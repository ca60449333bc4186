//! Paths along the operators: z(t) = T(t·c) z0, sampled at given times or stepped frame by frame.

use super::{BlockDiagonal, Operators};
use crate::{Error, Result};

/// `z(t) = T(t·c) z0` for each t in `ts`: one coefficient vector `c` (M), one feature `z0` (d).
/// Returns `ts.len()` × d values. Used for the operator sweeps of docs/method.md §11.
pub fn path(ops: &Operators, c: &[f32], z0: &[f32], ts: &[f32]) -> Result<Vec<f32>> {
    check_single(ops, c, z0)?;
    let scaled: Vec<f32> = ts
        .iter()
        .flat_map(|&t| c.iter().map(move |&x| t * x))
        .collect();
    if scaled.is_empty() {
        return Ok(Vec::new());
    }
    ops.apply(&scaled, z0)
}

/// Walks z ← E z with E = T(Δt·c) computed once, so each animation frame costs one block-diagonal
/// matrix-vector product instead of K exponentials. After j steps the position is T(j·Δt·c) z0 up
/// to rounding, because the T(t·c) form a one-parameter group.
#[derive(Debug, Clone)]
pub struct PathStepper {
    step: BlockDiagonal,
    z: Vec<f32>,
    steps: u64,
}

impl PathStepper {
    /// Starts at `z0` with step `T(dt·c)`.
    pub fn new(ops: &Operators, c: &[f32], z0: &[f32], dt: f32) -> Result<Self> {
        check_single(ops, c, z0)?;
        let scaled: Vec<f32> = c.iter().map(|&x| dt * x).collect();
        Ok(Self {
            step: ops.transport(&scaled)?,
            z: z0.to_vec(),
            steps: 0,
        })
    }

    /// Advances one step and returns the new position.
    pub fn step(&mut self) -> Result<&[f32]> {
        self.z = self.step.apply(&self.z)?;
        self.steps += 1;
        Ok(&self.z)
    }

    /// The current position.
    pub fn position(&self) -> &[f32] {
        &self.z
    }

    /// Steps taken since the start.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

fn check_single(ops: &Operators, c: &[f32], z0: &[f32]) -> Result<()> {
    if c.len() != ops.num_operators() {
        return Err(Error::shape(
            "coefficients",
            &[ops.num_operators()],
            &[c.len()],
        ));
    }
    if z0.len() != ops.dim() {
        return Err(Error::shape("z0", &[ops.dim()], &[z0.len()]));
    }
    Ok(())
}
