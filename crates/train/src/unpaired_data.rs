//! Two image domains as a [`DataSource`] for translation recipes: batch `b` of size `n` is `n`
//! images of domain A followed by `n` of domain B (labels 0 and 1), each domain shuffled by its own
//! seeded loader, so no image is paired with another.

use candle_core::{Device, Tensor};
use condor_core::{derived_rng, Batch, Conditioning, DataSource, Rng};
use condor_data::loader::{Loader, LoaderConfig};
use condor_data::{Augment, CaptionedData, DatasetConfig};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::text_data::{loader_batch, loader_config};

/// Both domains of an unpaired dataset.
pub struct UnpairedImages {
    loaders: [Loader; 2],
    shape: Vec<usize>,
    batch_size: usize,
}

impl UnpairedImages {
    /// Opens the two domains of `config` (an unpaired dataset). Files a folder skips are reported on
    /// standard error, with why, before training starts.
    pub fn open(config: &RunConfig) -> Result<Self> {
        let Some((open, size, flip)) = config.data.domains()? else {
            return Err(TrainError::Config("not an unpaired dataset".into()));
        };
        let DatasetConfig::Unpaired { domains, .. } = &config.data else { unreachable!("domains() checked it") };
        for (name, skipped) in domains.names().iter().zip(&open.skipped) {
            if !skipped.is_empty() {
                eprintln!("domain {name}: skipped {} files, the first {:?}", skipped.len(), skipped[0]);
            }
        }
        let channels = open.sources[0].channels();
        let loader = |k: usize| -> Result<Loader> {
            let source = open.sources[k].clone();
            let data =
                CaptionedData { source: source.clone(), size, augment: Augment { flip, crop: 0.0 }, layout: false };
            let base = loader_config(config, &data);
            // Each domain is shuffled by its own seed: the two orders are unrelated.
            let seed = rand::Rng::random(&mut derived_rng(base.seed, &[k as u64]));
            Ok(Loader::new(source, LoaderConfig { seed, ..base })?)
        };
        let loaders = [loader(0)?, loader(1)?];
        Ok(Self { loaders, shape: vec![channels, size, size], batch_size: config.batch_size })
    }
}

impl DataSource for UnpairedImages {
    fn sample_shape(&self) -> Vec<usize> {
        self.shape.clone()
    }
    fn cond_dim(&self) -> usize {
        0
    }
    fn batch(&self, index: u64, batch_size: usize, _rng: &mut Rng, device: &Device) -> condor_core::Result<Batch> {
        let mut pixels = Vec::new();
        for loader in &self.loaders {
            pixels.extend(loader_batch(loader, self.batch_size, batch_size, index)?.images);
        }
        let [c, s, _] = self.shape[..] else { unreachable!("images") };
        let samples = Tensor::from_vec(pixels, (2 * batch_size, c, s, s), device)?;
        let labels = (0..2 * batch_size).map(|i| i / batch_size).collect();
        Ok(Batch { samples, conditioning: None, labels: Some(labels) })
    }
    fn conditioning(&self, _: u64, _: usize, _: &mut Rng, _: &Device) -> condor_core::Result<Option<Conditioning>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunConfig {
        let toml = r#"
            steps = 1
            batch_size = 3
            [data]
            kind = "unpaired"
            domains = "red_blue"
            count = 10
            size = 16
            [generator]
            plugin = "mlp"
            [discriminator]
            plugin = "mlp"
        "#;
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_batch_holds_as_many_images_of_each_domain_in_unrelated_orders() {
        let data = UnpairedImages::open(&config()).unwrap();
        let mut rng = derived_rng(0, &[]);
        let b = data.batch(0, 3, &mut rng, &Device::Cpu).unwrap();
        assert_eq!(b.samples.dims(), [6, 3, 16, 16]);
        assert_eq!(b.labels.unwrap(), vec![0, 0, 0, 1, 1, 1]);
        // Rows 0..3 are domain A's batch (red birds), rows 3..6 domain B's (blue birds).
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let n = 3 * 3 * 16 * 16;
        for (k, colour) in [(0, condor_data::birds::Colour::Red), (1, condor_data::birds::Colour::Blue)] {
            let own = data.loaders[k].batch(0).unwrap();
            assert_eq!(flat(&b.samples)[k * n..(k + 1) * n], own.images[..]);
            assert!(own.attributes.unwrap().iter().all(|a| a.body == colour && a.wing == colour));
        }
        // The same batch again; another batch differs. The two orders are unrelated.
        let again = data.batch(0, 3, &mut rng, &Device::Cpu).unwrap();
        assert_eq!(flat(&again.samples), flat(&b.samples));
        assert_ne!(flat(&data.batch(1, 3, &mut rng, &Device::Cpu).unwrap().samples), flat(&b.samples));
        let orders: Vec<Vec<usize>> = data.loaders.iter().map(|l| l.batch(0).unwrap().indices).collect();
        assert_ne!(orders[0], orders[1]);
        assert!(data.batch(0, 4, &mut rng, &Device::Cpu).is_err(), "a batch size the config does not say");
    }
}
