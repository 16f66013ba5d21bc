//! Data-parallel training: one process per device. Every rank draws the same global batch and the same
//! noise from the run's seed, computes the forward and backward pass on its own rows of it (its
//! [`Shard`]), and the ranks average their gradients with one all-reduce per update before the
//! identical optimizer step. With equal shards the averaged gradient is the global batch's gradient,
//! so a run on W devices follows the single-device run up to floating point, except that batch norm
//! normalises over each rank's rows (as PyTorch's DistributedDataParallel does without SyncBatchNorm);
//! batch-norm running statistics are averaged over ranks after every step, so all ranks hold the same
//! state and any world size can resume any checkpoint.
//!
//! The sums come from a [`Collective`]: NCCL on CUDA devices ([`nccl::NcclCollective`], cargo feature
//! `nccl`), or anything a caller implements (an MPI binding, an in-process one for tests).

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use condor_core::{Conditioning, TokenEmbeddings};

use crate::error::{Result, TrainError};

/// A group of processes that can sum tensors elementwise: the engine of data-parallel training.
///
/// Every rank must call [`Collective::all_reduce_sum`] the same number of times, in the same order,
/// with tensors of the same shape; the trainer guarantees that.
pub trait Collective {
    /// This process's index in the group, from 0.
    fn rank(&self) -> usize;
    /// The number of processes in the group.
    fn world_size(&self) -> usize;
    /// The elementwise sum of `t` (a contiguous float32 tensor) over every rank, on `t`'s device.
    fn all_reduce_sum(&self, t: &Tensor) -> candle_core::Result<Tensor>;
}

/// A group of one: rank 0 of 1, whose sum is the tensor itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        Ok(t.clone())
    }
}

/// The rows of a global batch that one rank computes: rows `rank * len .. (rank + 1) * len`, where
/// `len = global / world`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This rank.
    pub rank: usize,
    /// Number of ranks.
    pub world: usize,
    /// Rows of the global batch.
    pub global: usize,
}

impl Shard {
    /// The whole batch, for a single process.
    pub fn whole(global: usize) -> Self {
        Self { rank: 0, world: 1, global }
    }

    /// Rank `rank` of `world`; the global batch must split evenly (so that the mean of the ranks'
    /// mean losses is the global batch's mean loss).
    pub fn new(rank: usize, world: usize, global: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(TrainError::Config(format!("rank {rank} is outside a world of {world} processes")));
        }
        if !global.is_multiple_of(world) {
            return Err(TrainError::Config(format!(
                "batch_size {global} does not split evenly over {world} processes; choose a multiple of {world}"
            )));
        }
        Ok(Self { rank, world, global })
    }

    /// Rows per rank.
    pub fn len(&self) -> usize {
        self.global / self.world
    }

    /// True when a rank has no rows (a global batch of 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This rank's rows of `t`, a stack of `blocks` global batches along dim 0 (GAN-INT's generator
    /// batch stacks two: the captions and their interpolations).
    pub fn rows(&self, t: &Tensor, blocks: usize) -> candle_core::Result<Tensor> {
        if self.world == 1 {
            return Ok(t.clone());
        }
        let start = self.rank * self.len();
        let parts = (0..blocks)
            .map(|b| t.narrow(0, b * self.global + start, self.len()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }

    /// This rank's rows of a conditioning batch of `blocks` stacked global batches.
    pub fn conditioning(&self, c: &Conditioning, blocks: usize) -> candle_core::Result<Conditioning> {
        let tokens = match &c.tokens {
            Some(t) => Some(TokenEmbeddings {
                embeddings: self.rows(&t.embeddings, blocks)?,
                mask: self.rows(&t.mask, blocks)?,
            }),
            None => None,
        };
        let layout = c.layout.as_ref().map(|l| l.map(|t| self.rows(t, blocks))).transpose()?;
        Ok(Conditioning { embedding: self.rows(&c.embedding, blocks)?, tokens, layout })
    }
}

/// The elementwise mean over the ranks of `parts`, flattened and joined into one float32 buffer: one
/// all-reduce for all of them.
fn mean_flat(c: &dyn Collective, parts: &[Tensor]) -> candle_core::Result<Tensor> {
    let flat = parts.iter().map(|t| t.to_dtype(DType::F32)?.flatten_all()).collect::<candle_core::Result<Vec<_>>>()?;
    c.all_reduce_sum(&Tensor::cat(&flat, 0)?.contiguous()?)? / c.world_size() as f64
}

/// Splits a buffer of [`mean_flat`] back into tensors shaped like `vars`, in their dtypes.
fn split_like(flat: &Tensor, vars: &[(String, Var)]) -> candle_core::Result<Vec<Tensor>> {
    let mut offset = 0;
    vars.iter()
        .map(|(_, v)| {
            let n = v.elem_count();
            offset += n;
            flat.narrow(0, offset - n, n)?.reshape(v.shape())?.to_dtype(v.dtype())
        })
        .collect()
}

/// Replaces each gradient of `vars` in `grads` by its mean over the ranks, in one all-reduce of all of
/// them flattened together. A variable without a gradient contributes zeros, so every rank sends a
/// buffer of the same layout, and is left without one (every rank runs the same graph, so a variable
/// that has no gradient here has none anywhere).
pub fn average_gradients(c: &dyn Collective, grads: &mut GradStore, vars: &[(String, Var)]) -> candle_core::Result<()> {
    if vars.is_empty() {
        return Ok(());
    }
    let present: Vec<bool> = vars.iter().map(|(_, v)| grads.get(v).is_some()).collect();
    let parts = vars
        .iter()
        .map(|(_, v)| match grads.get(v) {
            Some(g) => Ok(g.clone()),
            None => Tensor::zeros(v.elem_count(), DType::F32, v.device()),
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let means = split_like(&mean_flat(c, &parts)?, vars)?;
    for (((_, v), mean), present) in vars.iter().zip(means).zip(present) {
        if present {
            grads.insert(v.as_tensor(), mean);
        }
    }
    Ok(())
}

/// Sets each variable of `vars` to its mean over the ranks (for batch-norm running statistics, which
/// each rank updates from its own rows), in one all-reduce.
pub fn average_values(c: &dyn Collective, vars: &[(String, Var)]) -> candle_core::Result<()> {
    if vars.is_empty() {
        return Ok(());
    }
    let parts: Vec<Tensor> = vars.iter().map(|(_, v)| v.as_tensor().clone()).collect();
    for ((_, v), mean) in vars.iter().zip(split_like(&mean_flat(c, &parts)?, vars)?) {
        v.set(&mean)?;
    }
    Ok(())
}

/// The mean over ranks of each scalar tensor in `values`, in one all-reduce and one read from the
/// device (the logged losses: every rank then sees the same numbers and stops on the same non-finite
/// one).
pub fn mean_scalars(c: &dyn Collective, values: &[&Tensor]) -> candle_core::Result<Vec<f32>> {
    let parts: Vec<Tensor> = values.iter().map(|t| (*t).clone()).collect();
    mean_flat(c, &parts)?.to_vec1::<f32>()
}

/// NCCL on CUDA devices: the collective of multi-GPU training (cargo feature `nccl`).
#[cfg(feature = "nccl")]
pub mod nccl {
    use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
    use candle_core::{CpuStorage, CudaStorage, CustomOp1, Device, Layout, Shape, Tensor};

    use super::Collective;
    use crate::error::{Result, TrainError};

    /// The unique id every rank of one NCCL group joins with: made by one process, passed to the
    /// others as 256 hex digits (an environment variable or a file).
    pub struct NcclId(Id);

    impl NcclId {
        /// A fresh id (calls `ncclGetUniqueId`).
        pub fn new() -> Result<Self> {
            Id::new().map(Self).map_err(|e| TrainError::Config(format!("NCCL could not make a group id: {e:?}")))
        }

        /// The id as 256 hex digits.
        pub fn to_hex(&self) -> String {
            self.0.internal().iter().map(|&b| format!("{:02x}", b as u8)).collect()
        }

        /// An id written by [`NcclId::to_hex`].
        pub fn from_hex(hex: &str) -> Result<Self> {
            let hex = hex.trim();
            let bad = || TrainError::Config(format!("an NCCL id must be 256 hex digits, got {} characters", hex.len()));
            if hex.len() != 256 || !hex.is_ascii() {
                return Err(bad());
            }
            let mut internal = [0 as std::ffi::c_char; 128];
            for (i, byte) in internal.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())? as std::ffi::c_char;
            }
            Ok(Self(Id::uninit(internal)))
        }
    }

    /// An NCCL communicator on one CUDA device, using candle's stream for that device so the sums are
    /// ordered with the kernels around them.
    pub struct NcclCollective {
        comm: Comm,
        rank: usize,
        world: usize,
    }

    impl NcclCollective {
        /// Joins the group `id` as `rank` of `world` on `device` (blocks until every rank has joined).
        pub fn new(device: &Device, rank: usize, world: usize, id: NcclId) -> Result<Self> {
            let cuda = device
                .as_cuda_device()
                .map_err(|_| TrainError::Config(format!("NCCL needs a CUDA device, got {device:?}")))?;
            let comm = Comm::from_rank(cuda.cuda_stream(), rank, world, id.0).map_err(|e| {
                TrainError::Config(format!("rank {rank} of {world} could not join the NCCL group: {e:?}"))
            })?;
            Ok(Self { comm, rank, world })
        }
    }

    impl Collective for NcclCollective {
        fn rank(&self) -> usize {
            self.rank
        }
        fn world_size(&self) -> usize {
            self.world
        }
        fn all_reduce_sum(&self, t: &Tensor) -> candle_core::Result<Tensor> {
            t.contiguous()?.apply_op1_no_bwd(&AllReduceSum(&self.comm))
        }
    }

    /// `ncclAllReduce(sum)` of a float32 buffer as a candle op.
    struct AllReduceSum<'a>(&'a Comm);

    impl CustomOp1 for AllReduceSum<'_> {
        fn name(&self) -> &'static str {
            "nccl-all-reduce-sum"
        }

        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            candle_core::bail!("NCCL sums tensors on CUDA devices only")
        }

        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
            let (start, end) = l
                .contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("NCCL all-reduce needs a contiguous tensor".into()))?;
            let src = s.as_cuda_slice::<f32>()?.slice(start..end);
            let device = s.device.clone();
            let mut dst = device.alloc_zeros::<f32>(end - start)?;
            self.0
                .all_reduce(&src, &mut dst, &ReduceOp::Sum)
                .map_err(|e| candle_core::Error::Msg(format!("NCCL all-reduce: {e:?}")))?;
            Ok((CudaStorage::wrap_cuda_slice(dst, device), l.shape().clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shards_take_their_rows_of_every_block() {
        let t = Tensor::arange(0f32, 8.0, &Device::Cpu).unwrap();
        let s = Shard::new(1, 2, 4).unwrap();
        assert_eq!(s.rows(&t, 2).unwrap().to_vec1::<f32>().unwrap(), vec![2.0, 3.0, 6.0, 7.0]);
        assert_eq!(s.rows(&t.narrow(0, 0, 4).unwrap(), 1).unwrap().to_vec1::<f32>().unwrap(), vec![2.0, 3.0]);
        assert_eq!(Shard::whole(8).rows(&t, 1).unwrap().to_vec1::<f32>().unwrap(), t.to_vec1::<f32>().unwrap());
        assert!(Shard::new(0, 3, 4).unwrap_err().to_string().contains("multiple of 3"));
        assert!(Shard::new(2, 2, 4).is_err());
    }

    #[test]
    fn a_group_of_one_averages_to_the_same_gradients() {
        let dev = Device::Cpu;
        let a = Var::new(&[[1f32, 2.0], [3.0, 4.0]], &dev).unwrap();
        let b = Var::new(&[5f32], &dev).unwrap();
        let unused = Var::new(&[7f32, 8.0], &dev).unwrap();
        let loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap()
            + (b.as_tensor() * 3.0).unwrap().sum_all().unwrap())
        .unwrap();
        let mut grads = loss.backward().unwrap();
        let vars = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone()), ("u".to_string(), unused.clone())];
        average_gradients(&SingleProcess, &mut grads, &vars).unwrap();
        assert_eq!(grads.get(&a).unwrap().to_vec2::<f32>().unwrap(), vec![vec![2.0, 4.0], vec![6.0, 8.0]]);
        assert_eq!(grads.get(&b).unwrap().to_vec1::<f32>().unwrap(), vec![3.0]);
        assert!(grads.get(&unused).is_none(), "no gradient stays no gradient");
        let x = Tensor::new(2.5f32, &dev).unwrap();
        assert_eq!(mean_scalars(&SingleProcess, &[&x, &x]).unwrap(), vec![2.5, 2.5]);
    }
}
