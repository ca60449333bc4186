//! Reproducible weight initialisation: a `VarBuilder` backend that draws every new variable from
//! one seeded ChaCha8 stream on the host.
//!
//! candle's CPU device cannot be seeded (`Device::set_seed` fails on CPU), so building a model
//! through a plain `VarMap` gives different weights on every run. [`SeededVarMap`] keeps candle's
//! initialisation *rules* (the `Init` each layer asks for: constants, uniform, normal, Kaiming)
//! but draws the numbers itself, in the order the layers are built, so "seed 0" means the same
//! network on every machine and device. The variables live in an ordinary [`VarMap`], which the
//! optimiser and the checkpoints use.

use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor, Var, bail};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A [`VarMap`] whose new variables are drawn from a seeded stream.
pub struct SeededVarMap {
    varmap: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

impl SeededVarMap {
    /// Wraps `varmap` (shared, not copied) with a stream seeded by `seed`.
    pub fn new(varmap: VarMap, seed: u64) -> Self {
        Self {
            varmap,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// A `VarBuilder` over this store, for f32 variables on `device`.
    pub fn into_var_builder(self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), DType::F32, device.clone())
    }

    /// Host values for a variable of `shape` initialised by `init`.
    fn draw(&self, shape: &Shape, init: Init) -> Result<Vec<f32>> {
        let n = shape.elem_count();
        let Ok(mut rng) = self.rng.lock() else {
            bail!("initialiser: the random stream's lock is poisoned");
        };
        let mut uniform = |lo: f64, up: f64| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            (lo + (up - lo) * u) as f32
        };
        Ok(match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Uniform { lo, up } => (0..n).map(|_| uniform(lo, up)).collect(),
            Init::Randn { mean, stdev } => normals(n, mean, stdev, &mut uniform),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        (0..n).map(|_| uniform(-bound, bound)).collect()
                    }
                    NormalOrUniform::Normal => normals(n, 0.0, std, &mut uniform),
                }
            }
        })
    }
}

/// `n` normal draws by Box–Muller from a uniform source.
fn normals(n: usize, mean: f64, stdev: f64, uniform: &mut impl FnMut(f64, f64) -> f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1 = f64::from(uniform(0.0, 1.0)).max(f64::MIN_POSITIVE);
            let u2 = f64::from(uniform(0.0, 1.0));
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (mean + stdev * z) as f32
        })
        .collect()
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let Ok(mut vars) = self.varmap.data().lock() else {
            bail!("initialiser: the VarMap's lock is poisoned");
        };
        if let Some(existing) = vars.get(name) {
            if existing.shape() != &shape {
                bail!(
                    "variable `{name}` exists with shape {:?}, asked for {:?}",
                    existing.dims(),
                    shape.dims()
                );
            }
            return Ok(existing.as_tensor().clone());
        }
        let values = self.draw(&shape, init)?;
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        vars.insert(name.to_owned(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let Ok(vars) = self.varmap.data().lock() else {
            bail!("initialiser: the VarMap's lock is poisoned");
        };
        match vars.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype)?.to_device(dev),
            None => bail!("variable `{name}` has not been created"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|v| v.contains_key(name))
            .unwrap_or(false)
    }
}
