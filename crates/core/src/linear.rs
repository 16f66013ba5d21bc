//! Fully connected layers: `x W^T` as one op whose products run through faer on the CPU (f32, f64),
//! with the bias and activation after it fused ([`crate::activation::bias_act`]).

use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor};
use faer::{MatMut, MatRef};

use crate::activation::{bias_act, Activation};
use crate::kernels::{check_counts, on_cpu, parallel_macs, real_op, Real};

/// Which product of `x W^T` and its gradients an op computes, for `x` `(rows, inputs)` and `W`
/// `(outputs, inputs)`.
#[derive(Clone, Copy, Debug)]
enum Product {
    /// `(x, W)` to `x W^T` `(rows, outputs)`: the forward pass (differentiable).
    Forward,
    /// `(dy, W)` to `dy W` `(rows, inputs)`: the input gradient.
    InputGrad,
    /// `(dy, x)` to `dy^T x` `(outputs, inputs)`: the weight gradient.
    WeightGrad,
}

#[derive(Clone, Copy, Debug)]
struct LinearOp {
    product: Product,
    rows: usize,
    inputs: usize,
    outputs: usize,
}

impl LinearOp {
    fn run<T: Real>(&self, a: &[T], b: &[T]) -> Vec<T> {
        let (r, i, o) = (self.rows, self.inputs, self.outputs);
        let parallel = parallel_macs(r * i * o);
        let (m, n) = match self.product {
            Product::Forward => (r, o),
            Product::InputGrad => (r, i),
            Product::WeightGrad => (o, i),
        };
        let mut out = vec![T::ZERO; m * n];
        let dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
        let row_major = MatRef::from_row_major_slice;
        match self.product {
            Product::Forward => T::matmul(dst, row_major(a, r, i), row_major(b, o, i).transpose(), false, parallel),
            Product::InputGrad => T::matmul(dst, row_major(a, r, o), row_major(b, o, i), false, parallel),
            Product::WeightGrad => T::matmul(dst, row_major(a, r, o).transpose(), row_major(b, r, i), false, parallel),
        }
        out
    }

    fn with(&self, product: Product) -> Self {
        Self { product, ..*self }
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        match self.product {
            Product::Forward => "linear",
            Product::InputGrad => "linear-input-grad",
            Product::WeightGrad => "linear-weight-grad",
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (r, i, o) = (self.rows, self.inputs, self.outputs);
        let (n1, n2, shape): (usize, usize, Shape) = match self.product {
            Product::Forward => (r * i, o * i, (r, o).into()),
            Product::InputGrad => (r * o, o * i, (r, i).into()),
            Product::WeightGrad => (r * o, r * i, (o, i).into()),
        };
        check_counts(self.name(), &[(l1, n1), (l2, n2)])?;
        let label = || format!("{} {r}x{i} -> {o}", self.name());
        let out = crate::profile::timed(label, || {
            Ok::<_, candle_core::Error>(real_op!(self.name(), [(s1, l1), (s2, l2)], |a, b| self.run(a, b)))
        })?;
        Ok((out, shape))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = x.track_op().then(|| grad.apply_op2_no_bwd(w, &self.with(Product::InputGrad))).transpose()?;
        let dw = w.track_op().then(|| grad.apply_op2_no_bwd(x, &self.with(Product::WeightGrad))).transpose()?;
        Ok((dx, dw))
    }
}

/// `x W^T` for `x` `(..., inputs)` and `w` `(outputs, inputs)`: what `x.broadcast_matmul(&w.t())` gives.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (outputs, inputs) = w.dims2()?;
    let dims = x.dims();
    if dims.last() != Some(&inputs) {
        candle_core::bail!("linear: the input has shape {dims:?}, the weights expect {inputs} features");
    }
    if !on_cpu(x) {
        return x.broadcast_matmul(&w.t()?);
    }
    let rows = x.elem_count() / inputs.max(1);
    let op = LinearOp { product: Product::Forward, rows, inputs, outputs };
    let y = x.contiguous()?.reshape((rows, inputs))?.apply_op2(&w.contiguous()?, op)?;
    let mut shape = dims.to_vec();
    *shape.last_mut().expect("a last dimension") = outputs;
    y.reshape(shape)
}

/// A `inputs -> outputs` layer initialised as `candle_nn::linear` does (Kaiming-normal weights, biases
/// uniform in `+-1/sqrt(inputs)`), under the same variable names.
pub fn linear(inputs: usize, outputs: usize, vb: candle_nn::VarBuilder) -> Result<Linear> {
    let weight = vb.get_with_hints((outputs, inputs), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
    let bound = 1.0 / (inputs as f64).sqrt();
    let bias = vb.get_with_hints(outputs, "bias", candle_nn::Init::Uniform { lo: -bound, up: bound })?;
    Ok(Linear::new(weight, Some(bias)))
}

/// A fully connected layer: a drop-in for `candle_nn::Linear` with the same `weight` `(outputs, inputs)`
/// and `bias` `(outputs,)`.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// The layer with these parameters.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The weights `(outputs, inputs)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `act(x W^T + b)`, the bias and activation as one op, for `x` `(rows, inputs)`.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        bias_act(&matmul_t(x, &self.weight)?, self.bias.as_ref(), act)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = matmul_t(x, &self.weight)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::check_gradients;
    use crate::rng::normal;
    use crate::{derived_rng, Params};
    use candle_core::{DType, Device, Var};

    fn random(shape: &[usize], seed: u64) -> Tensor {
        normal(&mut derived_rng(seed, &[]), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn products_and_gradients_match_candle() {
        for (rows, inputs, outputs) in [(3, 5, 4), (64, 228, 300), (1, 7, 1)] {
            let x = Var::from_tensor(&random(&[rows, inputs], 1)).unwrap();
            let w = Var::from_tensor(&random(&[outputs, inputs], 2)).unwrap();
            let g = random(&[rows, outputs], 3);
            let ours = matmul_t(&x, &w).unwrap();
            let theirs = x.matmul(&w.t().unwrap()).unwrap();
            let diff =
                |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff(&ours, &theirs) < 1e-4);
            let (a, b) = ((ours * &g).unwrap().sum_all().unwrap(), (theirs * &g).unwrap().sum_all().unwrap());
            let (ga, gb) = (a.backward().unwrap(), b.backward().unwrap());
            for v in [&x, &w] {
                assert!(diff(ga.get(v).unwrap(), gb.get(v).unwrap()) < 1e-3, "{rows}x{inputs}x{outputs}");
            }
        }
        // Leading dimensions are flattened and restored.
        let x = random(&[2, 3, 5], 4);
        let w = random(&[4, 5], 5);
        assert_eq!(matmul_t(&x, &w).unwrap().dims(), &[2, 3, 4]);
        assert!(matmul_t(&x, &random(&[4, 6], 6)).is_err());
    }

    #[test]
    fn gradients_match_finite_differences() {
        let params = Params::new(7);
        let vb = params.var_builder(DType::F64, &Device::Cpu);
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 };
        let x = vb.get_with_hints((4, 6), "x", init).unwrap();
        let layer =
            Linear::new(vb.get_with_hints((3, 6), "w", init).unwrap(), Some(vb.get_with_hints(3, "b", init).unwrap()));
        let g = random(&[4, 3], 8).to_dtype(DType::F64).unwrap();
        let checked = check_gradients(&params, 10, 1e-6, || (layer.forward_act(&x, Activation::Tanh)? * &g)?.sum_all());
        assert!(checked.unwrap() >= 20);
    }
}
