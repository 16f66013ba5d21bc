//! # condor-eval: how good a trained generator is
//!
//! [`birds::evaluate`] scores a text-to-bird model against its real data over several seeds: FID and
//! KID, attribute accuracy and retrieval precision by the [`bird_judge`] on the test split, held-out
//! phrasings and held-out colour combinations, and diversity. [`colours`] checks that each body
//! colour is drawn as asked, [`digits`] does the same for MNIST digits, and [`mixture`] measures the
//! mode coverage of 2D mixture models; [`translation`] scores image-to-image translation between bird
//! domains. Every function takes the [`condor_infer::TextToImage`] (or
//! generator) it scores and a candle `Device`.

pub mod bird_judge;
pub mod birds;
pub mod colours;
pub mod digits;
pub mod error;
pub mod mixture;
pub mod placement;
pub mod translation;

pub use error::{EvalError, Result};
