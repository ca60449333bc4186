//! The learned operator dictionary Ψ and the transport `T(c) z` it defines (docs/method.md §2).
//!
//! Ψ has shape (M, K, n, n): M generators, each block-diagonal with K blocks of n×n acting on a
//! feature of d = K·n values split into K contiguous chunks. A coefficient row c ∈ R^M gives the
//! Lie-algebra element `A[k] = Σ_m c_m Ψ[m, k]` and the group element `T(c) = blockdiag_k expm(A[k])`.
//! Everything here is differentiable with respect to Ψ, c and z, and always runs in f32 (the
//! exponential of a 64×64 block loses too much in f16).
//!
//! The CPU reference with the same semantics is [`mclr_shared::operators::Operators`]; the stable
//! init is taken from it so that the trainer and the viewer share one definition.

use candle_core::{DType, Device, Result, Shape, Tensor, Var, bail};
use candle_nn::VarMap;
use mclr_shared::operators::Operators;

use crate::expm::expm;

/// The name the trainer registers Ψ under in its [`VarMap`], so the optimiser can find it and give
/// it its own parameter group (lr 1e-3, weight decay 1e-3, gradient clipping 0.1; docs/method.md §7).
pub const PSI_VAR_NAME: &str = "operators.psi";

/// The operator dictionary Ψ (M, K, n, n) as a trainable f32 variable, with the transport it
/// defines.
#[derive(Debug, Clone)]
pub struct TransportOperator {
    psi: Var,
    m: usize,
    k: usize,
    n: usize,
}

impl TransportOperator {
    /// Ψ with the paper's stable init, registered in `varmap` under `name` (usually
    /// [`PSI_VAR_NAME`]) on `device`.
    ///
    /// The values come from [`Operators::stable_init`] with the caller's seeded `uniform` source
    /// (values in [0, 1)), so a run's init is reproducible and identical to the CPU reference's. As
    /// with [`VarMap::get`], a variable already registered under `name` (with the same shape and
    /// dtype f32) is reused rather than overwritten; `uniform` is drawn from either way, so later
    /// draws from the same generator do not depend on that.
    ///
    /// # Errors
    /// If M, K or n is 0, if `name` is taken by a variable of another shape or dtype, or if the
    /// tensor cannot be created on `device`.
    pub fn stable_init(
        varmap: &VarMap,
        name: &str,
        m: usize,
        k: usize,
        n: usize,
        uniform: impl FnMut() -> f32,
        device: &Device,
    ) -> Result<Self> {
        let init = Operators::stable_init(m, k, n, uniform).map_err(candle_core::Error::wrap)?;
        let psi = Tensor::from_slice(init.as_slice(), (m, k, n, n), device)?;
        let Ok(mut vars) = varmap.data().lock() else {
            bail!("operators: the VarMap's lock is poisoned (a thread panicked holding it)");
        };
        if let Some(existing) = vars.get(name) {
            if existing.dims() != [m, k, n, n] || existing.dtype() != DType::F32 {
                bail!(
                    "operators: variable `{name}` already exists with shape {:?} and dtype {:?}, \
                     expected ({m}, {k}, {n}, {n}) f32",
                    existing.dims(),
                    existing.dtype()
                );
            }
            return Self::from_var(existing.clone());
        }
        let var = Var::from_tensor(&psi)?;
        vars.insert(name.to_owned(), var.clone());
        Self::from_var(var)
    }

    /// Ψ from an existing (M, K, n, n) f32 tensor, e.g. a fixture or a checkpoint. The result is a
    /// trainable variable (a copy, unless `psi` already is one) that is not registered in any
    /// [`VarMap`].
    ///
    /// # Errors
    /// If `psi` is not a rank-4 (M, K, n, n) f32 tensor with M, K, n ≥ 1.
    pub fn from_tensor(psi: &Tensor) -> Result<Self> {
        check_psi(psi)?;
        Self::from_var(Var::from_tensor(psi)?)
    }

    /// Ψ from the CPU reference's validated dictionary (e.g. one read back from a bundle).
    ///
    /// # Errors
    /// If the tensor cannot be created on `device`.
    pub fn from_operators(operators: &Operators, device: &Device) -> Result<Self> {
        let (m, k, n) = (
            operators.num_operators(),
            operators.blocks(),
            operators.block_size(),
        );
        Self::from_tensor(&Tensor::from_slice(
            operators.as_slice(),
            (m, k, n, n),
            device,
        )?)
    }

    /// The current Ψ as the CPU reference's dictionary, for export to a bundle.
    ///
    /// # Errors
    /// If reading the tensor back fails or Ψ holds non-finite values.
    #[allow(clippy::disallowed_methods)] // export, not a training step
    pub fn to_operators(&self) -> Result<Operators> {
        let values = self
            .psi
            .as_detached_tensor()
            .flatten_all()?
            .to_vec1::<f32>()?;
        Operators::new(self.m, self.k, self.n, values).map_err(candle_core::Error::wrap)
    }

    fn from_var(psi: Var) -> Result<Self> {
        let (m, k, n) = check_psi(psi.as_tensor())?;
        Ok(Self { psi, m, k, n })
    }

    /// Ψ as a tensor (M, K, n, n); gradients of Ψ are keyed by this tensor.
    pub fn psi(&self) -> &Tensor {
        self.psi.as_tensor()
    }

    /// Ψ as a variable, for an optimiser's parameter group.
    pub fn var(&self) -> &Var {
        &self.psi
    }

    /// Number of operators M.
    pub fn num_operators(&self) -> usize {
        self.m
    }

    /// Number of diagonal blocks K.
    pub fn blocks(&self) -> usize {
        self.k
    }

    /// Block size n.
    pub fn block_size(&self) -> usize {
        self.n
    }

    /// Feature dimension d = K·n the operators act on.
    pub fn dim(&self) -> usize {
        self.k * self.n
    }

    /// Lie-algebra elements `A[..., k] = Σ_m c[..., m] Ψ[m, k]` for coefficients `c` (..., M):
    /// shape (..., K, n, n). One matmul of the coefficient rows (R × M) with Ψ viewed as
    /// (M × K·n·n).
    ///
    /// # Errors
    /// If `c` is not an f32 tensor whose last axis has length M.
    pub fn generators(&self, c: &Tensor) -> Result<Tensor> {
        let lead = self.coefficient_lead(c)?;
        let rows: usize = lead.iter().product();
        let block = self.k * self.n * self.n;
        let flat_psi = self.psi.as_tensor().reshape((self.m, block))?;
        let a = c.reshape((rows, self.m))?.matmul(&flat_psi)?;
        let mut dims = lead;
        dims.extend([self.k, self.n, self.n]);
        a.reshape(dims)
    }

    /// Group elements `T(c)[..., k] = expm(A[..., k])` for coefficients `c` (..., M): shape
    /// (..., K, n, n).
    ///
    /// # Errors
    /// As [`Self::generators`], and if the generators are not finite.
    pub fn group_elements(&self, c: &Tensor) -> Result<Tensor> {
        expm(&self.generators(c)?)
    }

    /// Moves features along the manifold: `out = T(c) z`, block by block (chunk k of a feature is
    /// `z[k·n .. (k+1)·n]`).
    ///
    /// `c` has shape (..., M) and `z` (..., d); their leading axes broadcast against each other as
    /// in numpy. The usual cases: c (B, M) with z (B, d) gives (B, d); c (S, B, M) with z (B, d)
    /// gives (S, B, d), each of the S samples moving the same features; c (T, 1, M) with z (B, d)
    /// gives (T, B, d), one path step per row. Exponentials are computed once per coefficient row
    /// of `c`, never per broadcast copy.
    ///
    /// # Errors
    /// If `c` or `z` is not f32, their last axes are not M and d, or their leading axes do not
    /// broadcast; the message names the argument.
    pub fn transport(&self, c: &Tensor, z: &Tensor) -> Result<Tensor> {
        let c_lead = self.coefficient_lead(c)?;
        let d = self.dim();
        let z_lead = match z.dims() {
            [lead @ .., last] if *last == d && z.dtype() == DType::F32 => lead.to_vec(),
            dims => bail!(
                "transport: features `z` must be an f32 tensor of shape (..., {d}), found {dims:?} {:?}",
                z.dtype()
            ),
        };
        let lead = match Shape::from(c_lead.clone())
            .broadcast_shape_binary_op(&Shape::from(z_lead.clone()), "transport")
        {
            Ok(shape) => shape.dims().to_vec(),
            Err(_) => bail!(
                "transport: the leading axes of coefficients `c` {c_lead:?} and features `z` \
                 {z_lead:?} do not broadcast"
            ),
        };
        let rows: usize = lead.iter().product();
        let (k, n) = (self.k, self.n);

        let mut block_dims = lead.clone();
        block_dims.extend([k, n, n]);
        let mut e = self.group_elements(c)?;
        if e.dims() != block_dims.as_slice() {
            e = e.broadcast_as(block_dims)?.contiguous()?;
        }
        let e = e.reshape((rows, k, n, n))?;

        let mut feature_dims = lead;
        feature_dims.push(d);
        let z = z
            .broadcast_as(feature_dims.clone())?
            .reshape((rows, k, n, 1))?;
        e.matmul(&z)?.reshape(feature_dims)
    }

    /// Frobenius norm of each operator Ψ_m over all its blocks, shape (M,), detached: a training
    /// diagnostic (docs/method.md §11) that stays on the device until the caller reads it.
    ///
    /// # Errors
    /// Only if the reduction fails on the device.
    pub fn frobenius_norms(&self) -> Result<Tensor> {
        self.psi.as_detached_tensor().sqr()?.sum((1, 2, 3))?.sqrt()
    }

    /// Checks `c` (..., M) f32 and returns its leading axes.
    fn coefficient_lead(&self, c: &Tensor) -> Result<Vec<usize>> {
        match c.dims() {
            [lead @ .., last] if *last == self.m && c.dtype() == DType::F32 => Ok(lead.to_vec()),
            dims => bail!(
                "transport: coefficients `c` must be an f32 tensor of shape (..., {}), found {dims:?} {:?}",
                self.m,
                c.dtype()
            ),
        }
    }
}

/// Checks that `psi` is an (M, K, n, n) f32 tensor with no zero extent; returns (M, K, n).
fn check_psi(psi: &Tensor) -> Result<(usize, usize, usize)> {
    match psi.dims() {
        &[m, k, n, n2] if n == n2 && m > 0 && k > 0 && n > 0 && psi.dtype() == DType::F32 => {
            Ok((m, k, n))
        }
        dims => bail!(
            "operators: `psi` must be an f32 tensor of shape (M, K, n, n) with M, K, n ≥ 1, found {dims:?} {:?}",
            psi.dtype()
        ),
    }
}
