//! What the trainer hands a recipe for one iteration ([`TrainContext`]): the iteration's batches, the
//! networks' pass copies, and updates that handle mixed precision, data parallel and schedules.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use condor_core::profile;
use condor_core::{Batch, Conditioning, DataSource, Discriminator, Generator, Network, Params, Rng, TrainContext};

use crate::networks::{as_discriminator, as_generator, as_network, index_of, TrainedNetwork};
use crate::parallel::{Collective, Shard, SingleProcess};
use crate::precision::{gradients_finite, master_gradients};

/// One iteration's view of the trainer.
pub(crate) struct StepContext<'a> {
    pub step: u64,
    pub total: u64,
    pub device: &'a Device,
    pub dtype: DType,
    pub shard: Shard,
    pub data: &'a dyn DataSource,
    pub networks: &'a mut [TrainedNetwork],
    pub batches: std::vec::IntoIter<(Batch, Rng)>,
    pub generator_draw: (Option<Conditioning>, Rng),
    pub collective: Option<&'a dyn Collective>,
    /// The loss scale of a float16 run, whose gradients are checked for overflow; `None` otherwise.
    pub loss_scale: Option<f64>,
    /// Whether an update was skipped for overflowing gradients.
    pub overflow: bool,
    /// Saved states of networks, by name ([`TrainContext::snapshot`]).
    pub snapshots: std::collections::HashMap<String, Snapshot>,
}

/// A network's weights, buffers (and those of its half-precision copy) and optimizer state.
pub(crate) struct Snapshot {
    params: Vec<Tensor>,
    half: Option<Vec<Tensor>>,
    optimizer: std::collections::HashMap<String, Tensor>,
    optimizer_steps: u64,
}

/// Copies of every variable of `params` (weights and buffers), in name order.
fn copies(params: &Params) -> candle_core::Result<Vec<Tensor>> {
    params.named().iter().map(|(_, v)| v.as_tensor().copy()).collect()
}

/// Sets every variable of `params` to the copies [`copies`] took.
fn set_all(params: &Params, saved: &[Tensor]) -> candle_core::Result<()> {
    params.named().iter().zip(saved).try_for_each(|((_, v), t)| v.set(t))
}

impl StepContext<'_> {
    fn net(&self, name: &str) -> condor_core::Result<&TrainedNetwork> {
        Ok(&self.networks[index_of(self.networks, name)?])
    }

    /// The gradients of `loss` (times the loss scale of a float16 run), for every variable it reaches.
    fn backward(&self, loss: &Tensor) -> candle_core::Result<GradStore> {
        let scale = self.loss_scale.unwrap_or(1.0);
        if scale == 1.0 {
            loss.backward()
        } else {
            (loss * scale)?.backward()
        }
    }

    /// The gradients of [`Self::backward`]'s `raw` for `vars`: with mixed precision, those of the working
    /// copy `half` moved onto the float32 master weights (and unscaled for float16); averaged over the
    /// ranks of a data-parallel group. `None` when float16 gradients overflowed.
    fn network_gradients(
        &self,
        raw: &GradStore,
        vars: &[(String, Var)],
        half: Option<&Params>,
    ) -> candle_core::Result<Option<GradStore>> {
        let scale = self.loss_scale.unwrap_or(1.0);
        let mut grads = match half {
            Some(h) => master_gradients(raw, h, vars, 1.0 / scale)?,
            None => {
                let mut own = GradStore::default();
                for (_, v) in vars {
                    if let Some(g) = raw.get(v) {
                        own.insert(v.as_tensor(), g.clone());
                    }
                }
                own
            }
        };
        if let Some(c) = self.collective {
            crate::parallel::average_gradients(c, &mut grads, vars)?;
        }
        if self.loss_scale.is_some() && !gradients_finite(&grads, vars)? {
            return Ok(None);
        }
        Ok(Some(grads))
    }

    /// One optimizer step of each network of `indices` on the gradients of one backward pass of
    /// `loss`; none steps when any network's float16 gradients overflowed.
    fn update_networks(&mut self, indices: &[usize], loss: &Tensor) -> condor_core::Result<bool> {
        let names: Vec<&str> = indices.iter().map(|&i| self.networks[i].decl.name.as_str()).collect();
        let what = names.join(", ");
        let raw = profile::timed(|| format!("step: {what} backward"), || self.backward(loss))?;
        let mut per_network = Vec::with_capacity(indices.len());
        for &i in indices {
            let net = &self.networks[i];
            match self.network_gradients(&raw, net.opt.vars(), net.half_params())? {
                Some(g) => per_network.push(g),
                None => {
                    self.overflow = true;
                    return Ok(false);
                }
            }
        }
        let _span = profile::span(|| format!("step: {what} update"));
        for (&i, grads) in indices.iter().zip(per_network) {
            let net = &mut self.networks[i];
            let lr = net.decl.optimizer.lr_at(self.step, self.total);
            net.opt.step_with_lr(&grads, lr)?;
            refresh_half(net)?;
        }
        Ok(true)
    }
}

/// Copies the trainable (non-buffer) values of `net`'s master weights to its half-precision copy.
fn refresh_half(net: &TrainedNetwork) -> candle_core::Result<()> {
    match net.half_params() {
        Some(h) => h.copy_from_where(&net.params, |n| !condor_core::is_buffer(n)),
        None => Ok(()),
    }
}

impl TrainContext for StepContext<'_> {
    fn step(&self) -> u64 {
        self.step
    }
    fn total_steps(&self) -> u64 {
        self.total
    }
    fn device(&self) -> &Device {
        self.device
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn batch_size(&self) -> usize {
        self.shard.global
    }
    fn local_rows(&self) -> usize {
        self.shard.len()
    }
    fn rows(&self, t: &Tensor, blocks: usize) -> condor_core::Result<Tensor> {
        Ok(self.shard.rows(t, blocks)?)
    }
    fn conditioning_rows(&self, c: &Conditioning, blocks: usize) -> condor_core::Result<Conditioning> {
        Ok(self.shard.conditioning(c, blocks)?)
    }
    fn data(&self) -> &dyn DataSource {
        self.data
    }
    fn next_batch(&mut self) -> Option<(Batch, Rng)> {
        self.batches.next()
    }
    fn generator_draw(&self) -> (Option<Conditioning>, Rng) {
        self.generator_draw.clone()
    }
    fn generator(&self, name: &str) -> condor_core::Result<&dyn Generator> {
        as_generator(name, self.net(name)?.pass())
    }
    fn discriminator(&self, name: &str) -> condor_core::Result<&dyn Discriminator> {
        as_discriminator(name, self.net(name)?.pass())
    }
    fn network(&self, name: &str) -> condor_core::Result<&dyn Network> {
        as_network(name, self.net(name)?.pass())
    }
    fn frozen_generator(&self, name: &str) -> condor_core::Result<&dyn Generator> {
        as_generator(name, &self.net(name)?.frozen)
    }
    fn frozen_discriminator(&self, name: &str) -> condor_core::Result<&dyn Discriminator> {
        as_discriminator(name, &self.net(name)?.frozen)
    }
    fn frozen_network(&self, name: &str) -> condor_core::Result<&dyn Network> {
        as_network(name, &self.net(name)?.frozen)
    }

    fn update(&mut self, name: &str, loss: &Tensor) -> condor_core::Result<bool> {
        let i = index_of(self.networks, name)?;
        self.update_networks(&[i], loss)
    }

    fn update_jointly(&mut self, names: &[&str], loss: &Tensor) -> condor_core::Result<bool> {
        let indices = names.iter().map(|n| index_of(self.networks, n)).collect::<condor_core::Result<Vec<_>>>()?;
        self.update_networks(&indices, loss)
    }

    fn clip_weights(&mut self, name: &str, c: f64) -> condor_core::Result<()> {
        let net = &self.networks[index_of(self.networks, name)?];
        for (_, v) in net.opt.vars() {
            v.set(&v.as_tensor().clamp(-c, c)?)?;
        }
        Ok(refresh_half(net)?)
    }

    fn scalars(&self, values: &[&Tensor]) -> condor_core::Result<Vec<f32>> {
        Ok(crate::parallel::mean_scalars(self.collective.unwrap_or(&SingleProcess), values)?)
    }

    fn snapshot(&mut self, name: &str) -> condor_core::Result<()> {
        let net = self.net(name)?;
        let snapshot = Snapshot {
            params: copies(&net.params)?,
            half: net.half_params().map(copies).transpose()?,
            optimizer: net
                .opt
                .state()
                .into_iter()
                .map(|(k, t)| Ok((k, t.copy()?)))
                .collect::<candle_core::Result<_>>()?,
            optimizer_steps: net.opt.steps(),
        };
        self.snapshots.insert(name.to_string(), snapshot);
        Ok(())
    }

    fn restore(&mut self, name: &str) -> condor_core::Result<()> {
        let snapshot = self
            .snapshots
            .remove(name)
            .ok_or_else(|| condor_core::Error::InvalidInput(format!("network `{name}` has no snapshot to restore")))?;
        let i = index_of(self.networks, name)?;
        let net = &mut self.networks[i];
        set_all(&net.params, &snapshot.params)?;
        if let (Some(h), Some(saved)) = (net.half_params(), &snapshot.half) {
            set_all(h, saved)?;
        }
        net.opt.load_state(&snapshot.optimizer, snapshot.optimizer_steps).map_err(condor_core::Error::InvalidInput)?;
        Ok(())
    }
}
