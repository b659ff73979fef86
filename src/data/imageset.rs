//! `ImageSet`: decoded images in one contiguous buffer (or, past the memory budget, the files
//! to decode again for every batch), and batches of them as tensors.
use std::borrow::Cow;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;

use super::warp::Params;
use super::Augment;

/// Images of one split, all `channels x height x width`, stored CHW one after another.
/// `Debug` prints the shape, not the pixels.
#[derive(Clone, Default, PartialEq)]
pub struct ImageSet {
    /// `len() * channels * height * width` bytes; image `i` is the `i`-th CHW block. Empty
    /// when the set streams from `files`.
    pub images: Vec<u8>,
    /// The image files, when the set streams them from disk (decoded for every batch): the
    /// decoded set would pass the memory budget ([`super::cache_budget`]).
    pub files: Vec<PathBuf>,
    /// Class index of each image (into `Dataset::classes`).
    pub labels: Vec<u32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// How batches turn bytes into inputs.
    pub normalize: crate::run::Normalize,
}

/// One batch: `images` (B, C, H, W) f32 in [0, 1], `labels` (B) u32.
#[derive(Clone, Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
}

impl std::fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ImageSet({} x {}x{}x{})",
            self.len(),
            self.channels,
            self.height,
            self.width
        )
    }
}

impl ImageSet {
    /// An empty set of the given geometry.
    pub fn empty(channels: usize, height: usize, width: usize) -> Self {
        ImageSet {
            images: Vec::new(),
            files: Vec::new(),
            labels: Vec::new(),
            channels,
            height,
            width,
            normalize: crate::run::Normalize::Unit,
        }
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The CHW bytes of image `i`, if it exists.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.image_len();
        self.images
            .get(i * n..(i + 1) * n)
            .filter(|_| i < self.len())
    }

    /// Images per class, for labels `0..classes` (labels outside that range are not counted).
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Whether the images are decoded from their files for every batch.
    pub fn is_streamed(&self) -> bool {
        !self.files.is_empty()
    }

    /// The CHW bytes of image `i`: from memory, or decoded from its file again when the set
    /// streams (an error names a file that changed since the run started).
    pub fn pixels(&self, i: usize) -> candle_core::Result<Cow<'_, [u8]>> {
        if i >= self.len() {
            candle_core::bail!(
                "batch index {i} is out of range: this image set has {} images",
                self.len()
            )
        }
        match self.files.get(i) {
            None => Ok(Cow::Borrowed(self.image(i).unwrap_or_default())),
            Some(path) => {
                let geom = super::decode::Geometry {
                    channels: self.channels,
                    height: self.height,
                    width: self.width,
                };
                super::decode::guarded(|| super::decode::decode_file(path, geom))
                    .map(Cow::Owned)
                    .map_err(|why| {
                        candle_core::Error::Msg(format!(
                            "{} could be read when the run started but not now: {why}; restore the file and resume the run",
                            path.display()
                        ))
                    })
            }
        }
    }

    /// Appends one image file (streaming) with its label.
    pub(crate) fn push_file(&mut self, path: PathBuf, label: u32) {
        self.files.push(path);
        self.labels.push(label);
    }

    /// Appends one image (CHW, `image_len()` bytes) with its label.
    pub(crate) fn push(&mut self, image: &[u8], label: u32) {
        debug_assert_eq!(image.len(), self.image_len());
        self.images.extend_from_slice(image);
        self.labels.push(label);
    }

    /// One batch as tensors: images (B,C,H,W) f32 scaled to [0,1] (rescale 1/255), labels (B) u32.
    /// `augment` is applied per image (train only; pass None for val/test), in `indices` order.
    /// An index out of range is an error naming it.
    pub fn batch(
        &self,
        indices: &[usize],
        augment: Option<(&Augment, &mut StdRng)>,
        device: &Device,
    ) -> candle_core::Result<Batch> {
        self.host_batch(indices, augment)?.to_device(device)
    }

    /// [`ImageSet::batch`] in host memory: the CPU work (augmentation, scaling) without the
    /// copy to a device, so a loader thread can prepare batches ahead of training.
    pub fn host_batch(
        &self,
        indices: &[usize],
        augment: Option<(&Augment, &mut StdRng)>,
    ) -> candle_core::Result<HostBatch> {
        self.host_batch_on(indices, augment, 1)
    }

    /// [`ImageSet::host_batch`] with the augmentation spread over `threads` threads. The
    /// random parameters of every image are drawn first, in order, from the one rng, so the
    /// batch is the same whatever the number of threads.
    pub fn host_batch_on(
        &self,
        indices: &[usize],
        augment: Option<(&Augment, &mut StdRng)>,
        threads: usize,
    ) -> candle_core::Result<HostBatch> {
        // Streaming: decoding is the work, on every core the loader may take.
        let threads = match self.is_streamed() {
            true => threads.max(super::decode::default_threads()),
            false => threads,
        };
        let threads = threads.clamp(1, indices.len().max(1));
        match augment.filter(|(a, _)| !a.is_identity()) {
            Some((a, rng)) if threads > 1 => self.parallel_batch(indices, Some((a, rng)), threads),
            None if threads > 1 => self.parallel_batch(indices, None, threads),
            augment => self.serial_batch(indices, augment),
        }
    }

    fn parallel_batch(
        &self,
        indices: &[usize],
        augment: Option<(&Augment, &mut StdRng)>,
        threads: usize,
    ) -> candle_core::Result<HostBatch> {
        let (h, w) = (self.height, self.width);
        let mut augment = augment;
        let jobs: Vec<(usize, Option<Params>)> = indices
            .iter()
            .map(|&i| (i, augment.as_mut().map(|(a, rng)| a.sample(rng, h, w))))
            .collect();
        self.assemble(&jobs, threads)
    }

    /// The batch of `jobs` (an image and, if any, the warp it goes through), the images
    /// spread over `threads` threads, in order.
    fn assemble(
        &self,
        jobs: &[(usize, Option<Params>)],
        threads: usize,
    ) -> candle_core::Result<HostBatch> {
        let (c, h, w) = (self.channels, self.height, self.width);
        let per = jobs.len().div_ceil(threads.max(1)).max(1);
        let parts: Vec<candle_core::Result<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks(per)
                .map(|part| {
                    scope.spawn(move || {
                        let mut out = Vec::with_capacity(part.len() * c * h * w);
                        for (i, params) in part {
                            let img = self.pixels(*i)?;
                            match params {
                                Some(p) => {
                                    let px = super::warp::apply(&img, c, h, w, p);
                                    self.normalize.extend(&px, c, &mut out);
                                }
                                None => self.normalize.extend(&img, c, &mut out),
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an augmentation thread panicked"))
                .collect()
        });
        let parts = parts.into_iter().collect::<candle_core::Result<Vec<_>>>()?;
        Ok(HostBatch {
            pixels: parts.concat(),
            labels: jobs.iter().map(|&(i, _)| self.labels[i]).collect(),
            shape: (jobs.len(), c, h, w),
        })
    }

    fn serial_batch(
        &self,
        indices: &[usize],
        augment: Option<(&Augment, &mut StdRng)>,
    ) -> candle_core::Result<HostBatch> {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        let mut augment = augment.filter(|(a, _)| !a.is_identity());
        for &i in indices {
            let img = self.pixels(i)?;
            match augment.as_mut() {
                Some((a, rng)) => {
                    let out = a.apply(&img, self.channels, self.height, self.width, rng);
                    self.normalize.extend(&out, self.channels, &mut pixels);
                }
                None => self.normalize.extend(&img, self.channels, &mut pixels),
            }
            labels.push(self.labels[i]);
        }
        Ok(HostBatch {
            pixels,
            labels,
            shape: (indices.len(), self.channels, self.height, self.width),
        })
    }
}

impl ImageSet {
    /// [`ImageSet::batch`] of one test-time view of each image (its crop resized back to the
    /// image size, and/or mirrored: [`crate::run::tta::View`]).
    pub fn batch_view(
        &self,
        indices: &[usize],
        view: crate::run::tta::View,
        device: &Device,
    ) -> candle_core::Result<Batch> {
        let mut p = Params::identity();
        (p.crop, p.hflip) = view;
        let jobs: Vec<(usize, Option<Params>)> =
            indices.iter().map(|&i| (i, Some(p.clone()))).collect();
        let threads = match self.is_streamed() {
            true => super::decode::default_threads(),
            false => 1,
        };
        self.assemble(&jobs, threads)?.to_device(device)
    }
}

/// A batch prepared in host memory (see [`ImageSet::host_batch`]).
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    pixels: Vec<f32>,
    labels: Vec<u32>,
    shape: (usize, usize, usize, usize),
}

impl HostBatch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The tensors on `device`.
    pub fn to_device(self, device: &Device) -> candle_core::Result<Batch> {
        let b = self.labels.len();
        Ok(Batch {
            images: Tensor::from_vec(self.pixels, self.shape, device)?,
            labels: Tensor::from_vec(self.labels, b, device)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn set() -> ImageSet {
        // Three 2-channel 1x2 images: image i has pixels [i*100, 255, 0, 51].
        let mut s = ImageSet::empty(2, 1, 2);
        for i in 0..3u8 {
            s.push(&[i * 100, 255, 0, 51], i as u32 % 2);
        }
        s
    }

    #[test]
    fn lengths_and_class_counts() {
        let s = set();
        assert_eq!((s.len(), s.is_empty()), (3, false));
        assert_eq!(s.class_counts(2), [2, 1]);
        assert_eq!(s.class_counts(1), [2]);
        assert!(ImageSet::empty(1, 2, 2).is_empty());
        assert_eq!(s.image(2), Some(&[200, 255, 0, 51][..]));
        assert_eq!(s.image(3), None);
    }

    #[test]
    fn batch_shapes_and_rescaled_values() {
        let s = set();
        let b = s.batch(&[2, 0], None, &Device::Cpu).unwrap();
        assert_eq!(b.images.dims(), [2, 2, 1, 2]);
        assert_eq!(b.labels.dims(), [2]);
        assert_eq!(b.labels.to_vec1::<u32>().unwrap(), [0, 0]);
        let v = b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = [200.0 / 255.0, 1.0, 0.0, 0.2, 0.0, 1.0, 0.0, 0.2];
        for (a, w) in v.iter().zip(want) {
            assert!((a - w).abs() < 1e-6, "{v:?}");
        }
        assert_eq!(v[1], 1.0, "255 maps to exactly 1.0");
        let empty = s.batch(&[], None, &Device::Cpu).unwrap();
        assert_eq!(empty.images.dims(), [0, 2, 1, 2]);
        let e = s
            .batch(&[0, 3], None, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("index 3") && e.contains("3 images"), "{e}");
    }

    #[test]
    fn batch_applies_augment_only_when_given() {
        let mut s = ImageSet::empty(1, 1, 4);
        s.push(&[0, 85, 170, 255], 0);
        let flip = Augment {
            hflip: true,
            ..Augment::default()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let b = s
                .batch(&[0], Some((&flip, &mut rng)), &Device::Cpu)
                .unwrap();
            let v = b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            seen.insert(
                v.iter()
                    .map(|x| (x * 255.0).round() as u8)
                    .collect::<Vec<_>>(),
            );
        }
        let want: std::collections::BTreeSet<_> =
            [vec![0, 85, 170, 255], vec![255, 170, 85, 0]].into();
        assert_eq!(seen, want, "both orientations appear, nothing else");
        let id = Augment::default();
        let b = s.batch(&[0], Some((&id, &mut rng)), &Device::Cpu).unwrap();
        assert_eq!(
            b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
        );
    }

    /// Augmentation spread over threads gives the batch one thread gives, bit for bit.
    #[test]
    fn threads_do_not_change_an_augmented_batch() {
        let mut set = ImageSet::empty(3, 8, 8);
        for k in 0..10u8 {
            let img: Vec<u8> = (0..3 * 64).map(|v| (v as u8).wrapping_mul(k + 3)).collect();
            set.push(&img, (k % 3) as u32);
        }
        let a = Augment {
            hflip: true,
            rotate: 20.0,
            zoom: 0.2,
            crop: Some(crate::run::Crop::default()),
            preset: Some(crate::run::Preset::TrivialAugment),
            ..Augment::default()
        };
        let idx: Vec<usize> = (0..10).rev().collect();
        let one = set
            .host_batch_on(&idx, Some((&a, &mut StdRng::seed_from_u64(3))), 1)
            .unwrap();
        for threads in [2, 3, 16] {
            let many = set
                .host_batch_on(&idx, Some((&a, &mut StdRng::seed_from_u64(3))), threads)
                .unwrap();
            assert_eq!(one, many, "{threads} threads");
        }
    }
}
