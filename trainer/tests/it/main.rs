//! The trainer's integration tests, gathered into one test binary: each module is one area of the
//! library (data, augmentation, models, losses, training, evaluation, export) and its CLI. One
//! binary links candle once, where one per file linked it twenty times.
// Tests read results back to compare them.
#![allow(clippy::disallowed_methods)]

mod augment_color;
mod augment_crop;
mod config;
mod data_cifar10;
mod data_fetch;
mod data_stl10;
mod data_tiny_imagenet;
mod device;
mod eval;
mod eval_cli;
mod eval_semisup;
mod expm;
mod export;
mod feature_aug;
mod interop;
mod kernels;
mod live;
mod loader;
mod losses;
mod models;
mod optim;
mod readback;
mod real_cifar10;
mod reference;
mod sampling;
mod schedule;
mod support;
mod train;
mod transport;
