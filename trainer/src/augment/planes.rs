//! The working image format of the augmentations: three `f32` planes (R, G, B) in `[0, 1]`.

use crate::data::ImageRef;

/// `u8 → f32` in `[0, 1]`, exactly `v / 255` as torchvision's `ToTensor` computes it.
static UNIT: [f32; 256] = {
    let mut t = [0.0_f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32 / 255.0;
        i += 1;
    }
    t
};

/// An RGB image as three `height × width` row-major `f32` planes (CHW), values nominally in
/// `[0, 1]`. The buffer is reused across images by [`Planes::load_rgb8`], so the hot path does
/// not allocate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Planes {
    height: usize,
    width: usize,
    data: Vec<f32>,
}

impl Planes {
    /// A black image.
    pub fn new(height: usize, width: usize) -> Self {
        Self {
            height,
            width,
            data: vec![0.0; 3 * height * width],
        }
    }

    /// An image whose pixel `(y, x)` is `f(y, x)` (R, G, B).
    pub fn from_fn(height: usize, width: usize, f: impl Fn(usize, usize) -> [f32; 3]) -> Self {
        let mut planes = Self::new(height, width);
        let n = height * width;
        for y in 0..height {
            for x in 0..width {
                let rgb = f(y, x);
                for (c, v) in rgb.into_iter().enumerate() {
                    if let Some(d) = planes.data.get_mut(c * n + y * width + x) {
                        *d = v;
                    }
                }
            }
        }
        planes
    }

    /// Converts an 8-bit HWC image.
    pub fn from_rgb8(image: ImageRef<'_>) -> Self {
        let mut planes = Self::default();
        planes.load_rgb8(image);
        planes
    }

    /// Replaces the contents with an 8-bit HWC image, reusing the buffer.
    pub fn load_rgb8(&mut self, image: ImageRef<'_>) {
        let n = image.height * image.width;
        self.height = image.height;
        self.width = image.width;
        self.data.resize(3 * n, 0.0);
        let (r, gb) = self.data.split_at_mut(n);
        let (g, b) = gb.split_at_mut(n);
        for (((px, r), g), b) in image.rgb.chunks_exact(3).zip(r).zip(g).zip(b) {
            if let &[pr, pg, pb] = px {
                *r = UNIT[usize::from(pr)];
                *g = UNIT[usize::from(pg)];
                *b = UNIT[usize::from(pb)];
            }
        }
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Pixels per plane (`height × width`).
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    /// All three planes, R then G then B.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The R, G and B planes.
    pub fn channels(&self) -> [&[f32]; 3] {
        let n = self.plane_len();
        let (r, gb) = self.data.split_at(n);
        let (g, b) = gb.split_at(n);
        [r, g, b]
    }

    /// The R, G and B planes, mutably.
    pub fn channels_mut(&mut self) -> [&mut [f32]; 3] {
        let n = self.plane_len();
        let (r, gb) = self.data.split_at_mut(n);
        let (g, b) = gb.split_at_mut(n);
        [r, g, b]
    }

    /// Pixel `(y, x)` as (R, G, B), or `None` outside the image.
    pub fn pixel(&self, y: usize, x: usize) -> Option<[f32; 3]> {
        if y >= self.height || x >= self.width {
            return None;
        }
        let i = y * self.width + x;
        let [r, g, b] = self.channels();
        Some([*r.get(i)?, *g.get(i)?, *b.get(i)?])
    }
}
