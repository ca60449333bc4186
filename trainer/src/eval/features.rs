//! Frozen backbone features of a set of images: the input of every protocol in this module and of
//! the bundle's gallery. Eval mode (batch-norm running statistics), the dataset's eval transform
//! (normalisation only, except STL-10, which is resized to 70 px and centre-cropped to 64; Tiny
//! ImageNet is used at its native 64 px with no crop), images in dataset order.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use indicatif::ProgressBar;

use crate::Result;
use crate::augment::EvalTransform;
use crate::data::loader::{EvalLoader, LoaderConfig};
use crate::data::{DatasetName, ImageSet};
use crate::model::ssl::SslModel;

/// Images per forward pass.
pub const BATCH_SIZE: usize = 256;

/// The backbone features of every image of `images` (row-major, `len × d`, in dataset order),
/// ticking `progress` by the images of each batch.
///
/// # Errors
/// Loader and tensor errors.
pub fn extract(
    model: &SslModel,
    images: &Arc<ImageSet>,
    dataset: DatasetName,
    device: &Device,
    progress: Option<&ProgressBar>,
) -> Result<Vec<f32>> {
    let loader = EvalLoader::new(
        Arc::clone(images),
        EvalTransform::for_dataset(dataset),
        LoaderConfig {
            batch_size: BATCH_SIZE,
            drop_last: false,
            shuffle: false,
            seed: 0,
            prefetch: 2,
            threads: None,
        },
    )?;
    let mut out = Vec::with_capacity(images.len().saturating_mul(model.backbone.feature_dim()));
    for batch in loader.iter()? {
        let rows = batch.len();
        let shape = (rows, 3, batch.height, batch.width);
        let x = Tensor::from_vec(batch.images, shape, device)?;
        let z = model.infer_features(&x)?.to_dtype(DType::F32)?;
        out.extend(z.flatten_all()?.to_vec1::<f32>()?);
        if let Some(bar) = progress {
            bar.inc(rows as u64);
        }
    }
    Ok(out)
}
