//! oodscope: out-of-distribution detection inspector for TorchScript image classifiers.
//!
//! Layers point one way: `ui → app → worker → (score, tune, fit) → detect → model/data → metrics`;
//! `cli` and `report` sit beside `app`.

pub mod alloc;
pub mod app;
pub mod assets;
pub mod cli;
pub mod compare;
pub mod data;
pub mod detect;
pub mod evaluate;
pub mod fit;
pub mod gui;
pub mod metrics;
pub mod model;
pub mod report;
pub mod results;
pub mod rng;
pub mod score;
pub mod torch_libs;
pub mod train;
pub mod ui;
pub mod worker;

/// Where the bundled models and demo assets are (see [`assets`]).
pub use assets::assets_root;
pub mod tune;
