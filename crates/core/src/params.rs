//! Model variables with seeded initialisation, sorted names and a notion of buffers.

use std::collections::HashMap;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{init::NormalOrUniform, Init, VarBuilder, VarMap};
use rand::Rng as _;
use rand_distr::{Distribution, Normal};

use crate::rng::{derived_rng, hash_name};

/// Name suffixes of variables that are state, not parameters: they are saved in checkpoints but never
/// trained. candle-nn's batch norm keeps its running statistics under the first two; a plugin names
/// its own state (a tracked average, fixed noise) `*_buffer`.
pub const BUFFER_SUFFIXES: [&str; 3] = ["running_mean", "running_var", "_buffer"];

/// True for a variable that holds state rather than a trainable parameter (see [`BUFFER_SUFFIXES`]).
pub fn is_buffer(name: &str) -> bool {
    BUFFER_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The variables of one model. Each variable is initialised from its own generator, derived from the
/// seed and the variable's name, so initial weights are reproducible and independent of the order in
/// which a model creates them.
#[derive(Clone)]
pub struct Params {
    varmap: VarMap,
    seed: u64,
}

impl Params {
    /// An empty set of variables that will be initialised from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { varmap: VarMap::new(), seed }
    }

    /// A `VarBuilder` whose new variables are seeded and land in this set.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        let backend: Box<dyn candle_nn::var_builder::SimpleBackend> =
            Box::new(SeededBackend { varmap: self.varmap.clone(), seed: self.seed });
        VarBuilder::from_backend(backend, dtype, device.clone())
    }

    /// A `VarBuilder` over the variables already in this set (built by [`Params::var_builder`]) that
    /// gives a second copy of the same model whose parameters are constants: they share storage with the
    /// variables, so they follow every update, but nothing computes gradients for them. Buffers stay
    /// variables, so a frozen copy's batch-norm statistics still update the model's. Use it for passes
    /// whose parameter gradients would be thrown away (a generator's images for the discriminator's
    /// step, the discriminator in the generator's step).
    pub fn frozen_var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        let tensors = self
            .named()
            .into_iter()
            .map(|(n, v)| {
                let t = if is_buffer(&n) { v.as_tensor().clone() } else { v.as_detached_tensor() };
                (n, t)
            })
            .collect();
        VarBuilder::from_backend(Box::new(FrozenBackend { tensors }), dtype, device.clone())
    }

    /// All variables, sorted by name.
    pub fn named(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("variable map lock poisoned");
        let mut all: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Trainable variables (everything but buffers), sorted by name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.named().into_iter().filter(|(n, _)| !is_buffer(n)).collect()
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.trainable().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Overwrites variables with the given tensors. Every variable must be present with its exact shape;
    /// extra tensors are an error too, so a checkpoint of another model is never half-loaded.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<(), String> {
        let named = self.named();
        for (name, var) in &named {
            let t = tensors.get(name).ok_or_else(|| format!("tensor `{name}` is missing"))?;
            if t.dims() != var.dims() {
                return Err(format!("tensor `{name}` has shape {:?}, the model expects {:?}", t.dims(), var.dims()));
            }
        }
        if let Some(extra) = tensors.keys().find(|k| !named.iter().any(|(n, _)| n == *k)) {
            return Err(format!("tensor `{extra}` does not belong to this model"));
        }
        for (name, var) in &named {
            let t = tensors[name].to_dtype(var.dtype()).and_then(|t| t.to_device(var.device()));
            t.and_then(|t| var.set(&t)).map_err(|e| format!("tensor `{name}`: {e}"))?;
        }
        Ok(())
    }

    /// Copies every variable's value from `other`, which must hold the same names and shapes.
    pub fn copy_from(&self, other: &Params) -> candle_core::Result<()> {
        self.copy_from_where(other, |_| true)
    }

    /// Copies the values of the variables whose names `keep` accepts from `other`, which must hold them
    /// with the same shapes, cast to this set's dtypes (float32 master weights into a half-precision
    /// copy, say).
    pub fn copy_from_where(&self, other: &Params, keep: impl Fn(&str) -> bool) -> candle_core::Result<()> {
        let theirs: HashMap<String, Var> = other.named().into_iter().collect();
        for (name, var) in self.named().into_iter().filter(|(n, _)| keep(n)) {
            let src = theirs
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("variable `{name}` missing in source")))?;
            var.set(&src.as_tensor().to_dtype(var.dtype())?)?;
        }
        Ok(())
    }
}

struct SeededBackend {
    varmap: VarMap,
    seed: u64,
}

impl candle_nn::var_builder::SimpleBackend for SeededBackend {
    fn get(&self, s: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut data = self.varmap.data().lock().expect("variable map lock poisoned");
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("variable `{name}` exists with shape {:?}, asked for {s:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let values = init_values(&s, init, self.seed, name)?;
        // candle-nn's batch norm keeps its running statistics in float32 for half-precision inputs.
        let dtype = match dtype {
            DType::F16 | DType::BF16 if name.ends_with("running_mean") || name.ends_with("running_var") => DType::F32,
            d => d,
        };
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        data.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("variable `{name}` must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().expect("variable map lock poisoned").contains_key(name)
    }
}

/// The backend of [`Params::frozen_var_builder`]: existing tensors by name, returned as they are (a
/// half-precision model's float32 batch-norm statistics included, as [`SeededBackend`] keeps them).
struct FrozenBackend {
    tensors: HashMap<String, Tensor>,
}

impl candle_nn::var_builder::SimpleBackend for FrozenBackend {
    fn get(&self, s: Shape, name: &str, _: Init, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        match self.tensors.get(name) {
            Some(t) if t.shape() == &s => Ok(t.clone()),
            Some(t) => candle_core::bail!("variable `{name}` has shape {:?}, asked for {s:?}", t.shape()),
            None => candle_core::bail!("a frozen copy asks for `{name}`, which the model does not have"),
        }
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("variable `{name}` must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// Draws the initial values of one variable, in the distributions candle-nn's `Init` describes.
fn init_values(shape: &Shape, init: Init, seed: u64, name: &str) -> candle_core::Result<Vec<f64>> {
    let n = shape.elem_count();
    let mut rng = derived_rng(seed, &[hash_name(name)]);
    let normal = |rng: &mut crate::Rng, mean: f64, std: f64| -> candle_core::Result<Vec<f64>> {
        let d = Normal::new(mean, std).map_err(|e| candle_core::Error::Msg(format!("{name}: {e}")))?;
        Ok((0..n).map(|_| d.sample(rng)).collect())
    };
    match init {
        Init::Const(c) => Ok(vec![c; n]),
        Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
        Init::Uniform { lo, up } => Ok((0..n).map(|_| rng.random_range(lo..up)).collect()),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    Ok((0..n).map(|_| rng.random_range(-bound..bound)).collect())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialisation_is_seeded_and_order_free() {
        let dev = Device::Cpu;
        let a = Params::new(3);
        let vb = a.var_builder(DType::F32, &dev);
        let randn = Init::Randn { mean: 0.0, stdev: 1.0 };
        vb.get_with_hints((4, 5), "w1", randn).unwrap();
        vb.get_with_hints((5,), "w2", randn).unwrap();
        let b = Params::new(3);
        let vb = b.var_builder(DType::F32, &dev);
        vb.get_with_hints((5,), "w2", randn).unwrap();
        vb.get_with_hints((4, 5), "w1", randn).unwrap();
        for ((na, va), (nb, vb)) in a.named().iter().zip(b.named().iter()) {
            assert_eq!(na, nb);
            let (x, y): (Vec<f32>, Vec<f32>) =
                (va.flatten_all().unwrap().to_vec1().unwrap(), vb.flatten_all().unwrap().to_vec1().unwrap());
            assert_eq!(x, y);
        }
        let c = Params::new(4);
        c.var_builder(DType::F32, &dev).get_with_hints((4, 5), "w1", randn).unwrap();
        let x: Vec<f32> = a.named()[0].1.flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = c.named()[0].1.flatten_all().unwrap().to_vec1().unwrap();
        assert_ne!(x, y);
    }

    #[test]
    fn kaiming_uniform_respects_its_bound() {
        let p = Params::new(0);
        let vb = p.var_builder(DType::F32, &Device::Cpu);
        let w = vb.get_with_hints((64, 100), "w", candle_nn::init::DEFAULT_KAIMING_UNIFORM).unwrap();
        let v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let bound = (3f32).sqrt() * (2f32).sqrt() / 10.0; // gain(relu) / sqrt(fan_in = 100)
        assert!(v.iter().all(|x| x.abs() <= bound));
        assert!(v.iter().any(|x| x.abs() > 0.9 * bound));
    }

    #[test]
    fn a_frozen_copy_shares_values_and_buffers_but_has_no_gradients() {
        let p = Params::new(0);
        let vb = p.var_builder(DType::F32, &Device::Cpu);
        let w = vb.get_with_hints((2,), "w", Init::Const(1.0)).unwrap();
        vb.get_with_hints((2,), "bn.running_mean", Init::Const(0.0)).unwrap();
        let frozen = p.frozen_var_builder(DType::F32, &Device::Cpu);
        let (fw, fstat) = (frozen.get(2, "w").unwrap(), frozen.get(2, "bn.running_mean").unwrap());
        assert!(!fw.is_variable() && fstat.is_variable());
        let (_, var) = p.named().into_iter().find(|(n, _)| n == "w").unwrap();
        var.set(&Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap()).unwrap();
        assert_eq!(fw.to_vec1::<f32>().unwrap(), [3.0, 4.0], "the frozen copy follows updates");
        let grads = (fw.sum_all().unwrap() + w.sum_all().unwrap()).unwrap().backward().unwrap();
        assert!(grads.get(&fw).is_none() && grads.get(&w).is_some());
        assert!(frozen.get(3, "w").is_err() && frozen.get(2, "other").is_err());
    }

    #[test]
    fn buffers_are_not_trainable() {
        let p = Params::new(0);
        let vb = p.var_builder(DType::F32, &Device::Cpu);
        candle_nn::batch_norm(3, 1e-5, vb.pp("bn")).unwrap();
        let names: Vec<String> = p.trainable().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["bn.bias", "bn.weight"]);
        assert_eq!(p.named().len(), 4);
    }
}
