//! Multi-GPU training: which rank this process is, the NCCL group it joins, and the launcher that
//! starts one process per GPU.
//!
//! `condor train --gpus 0,1,2,3` starts one `condor train` per listed GPU with the variables below set,
//! waits for them, and stops the others when one fails. Multi-node launchers (torchrun, SLURM
//! scripts) set them themselves, one process per GPU:
//!
//! | variable | meaning |
//! |---|---|
//! | `CONDOR_RANK` (or `RANK`) | this process's rank, 0..world |
//! | `CONDOR_WORLD_SIZE` (or `WORLD_SIZE`) | the number of processes |
//! | `CONDOR_GPU` (or `LOCAL_RANK`) | the CUDA device of this process on its machine |
//! | `CONDOR_NCCL_ID` | the group's NCCL id, 256 hex digits: the same on every rank (`condor nccl-id` makes one) |

use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

use condor_train::{Collective, SingleProcess};

/// Where this process stands in a data-parallel run started by a launcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankEnv {
    /// This process's rank.
    pub rank: usize,
    /// Number of processes.
    pub world: usize,
    /// The CUDA device index on this machine, when the launcher named one.
    pub gpu: Option<usize>,
    /// The NCCL group id, hex.
    pub nccl_id: Option<String>,
}

/// Reads [`RankEnv`] from the environment through `var`: `None` when neither `CONDOR_RANK` nor `RANK`
/// is set (an ordinary single-process run), an error when the variables are incomplete or inconsistent.
pub fn rank_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<RankEnv>, String> {
    let first = |names: [&'static str; 2]| names.into_iter().find_map(|n| var(n).map(|v| (n, v)));
    let number = |(name, value): (&str, String)| {
        value.trim().parse::<usize>().map_err(|_| format!("{name}={value:?} is not a non-negative integer"))
    };
    let Some(rank) = first(["CONDOR_RANK", "RANK"]) else {
        return Ok(None);
    };
    let rank = number(rank)?;
    let world = number(
        first(["CONDOR_WORLD_SIZE", "WORLD_SIZE"])
            .ok_or("CONDOR_RANK is set but CONDOR_WORLD_SIZE (or WORLD_SIZE) is not")?,
    )?;
    if world == 0 || rank >= world {
        return Err(format!("rank {rank} is outside a world of {world} processes"));
    }
    let gpu = first(["CONDOR_GPU", "LOCAL_RANK"]).map(number).transpose()?;
    Ok(Some(RankEnv { rank, world, gpu, nccl_id: var("CONDOR_NCCL_ID") }))
}

/// Parses a `--gpus` list such as `0,1,3`: CUDA device indices, each at most once.
pub fn parse_gpus(list: &str) -> Result<Vec<usize>, String> {
    let gpus = list
        .split(',')
        .map(|s| s.trim().parse::<usize>().map_err(|_| format!("`--gpus {list}`: {s:?} is not a GPU index")))
        .collect::<Result<Vec<_>, _>>()?;
    if gpus.is_empty() {
        return Err("`--gpus` needs at least one GPU index".into());
    }
    let mut sorted = gpus.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("`--gpus {list}` names a GPU twice"));
    }
    Ok(gpus)
}

/// A fresh NCCL group id, hex (needs the `nccl` feature).
pub fn new_nccl_id() -> Result<String, String> {
    #[cfg(feature = "nccl")]
    {
        condor_train::parallel::nccl::NcclId::new().map(|id| id.to_hex()).map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "nccl"))]
    {
        Err(no_nccl())
    }
}

#[cfg(not(feature = "nccl"))]
fn no_nccl() -> String {
    "multi-GPU training needs NCCL: build Condor with `--features nccl` (see README, GPUs)".into()
}

/// Joins the data-parallel group of `env` on `device`: NCCL for two or more ranks, or the group of
/// one. Blocks until every rank has joined.
pub fn join_group(env: &RankEnv, device: &candle_core::Device) -> Result<Arc<dyn Collective>, String> {
    if env.world == 1 && env.nccl_id.is_none() {
        return Ok(Arc::new(SingleProcess));
    }
    #[cfg(feature = "nccl")]
    {
        use condor_train::parallel::nccl::{NcclCollective, NcclId};
        let hex = env
            .nccl_id
            .as_deref()
            .ok_or("a data-parallel rank needs CONDOR_NCCL_ID (make one with `condor nccl-id`)")?;
        let id = NcclId::from_hex(hex).map_err(|e| e.to_string())?;
        let group = NcclCollective::new(device, env.rank, env.world, id).map_err(|e| e.to_string())?;
        Ok(Arc::new(group))
    }
    #[cfg(not(feature = "nccl"))]
    {
        let _ = device;
        Err(no_nccl())
    }
}

/// Starts `program args` once per GPU in `gpus` as ranks 0..n of one NCCL group (the variables of the
/// module docs set), waits for all of them, and returns the first failure. When a rank fails the others
/// are stopped: they would otherwise wait for it forever inside a collective.
pub fn launch(program: &std::path::Path, args: &[std::ffi::OsString], gpus: &[usize]) -> Result<(), String> {
    let id = new_nccl_id()?;
    let mut children: Vec<(usize, Child)> = Vec::with_capacity(gpus.len());
    for (rank, gpu) in gpus.iter().enumerate() {
        let child = Command::new(program)
            .args(args)
            .env("CONDOR_RANK", rank.to_string())
            .env("CONDOR_WORLD_SIZE", gpus.len().to_string())
            .env("CONDOR_GPU", gpu.to_string())
            .env("CONDOR_NCCL_ID", &id)
            .spawn();
        match child {
            Ok(c) => children.push((rank, c)),
            Err(e) => {
                stop_all(&mut children);
                return Err(format!("cannot start rank {rank} ({}): {e}", program.display()));
            }
        }
    }
    wait_all(children)
}

fn wait_all(mut children: Vec<(usize, Child)>) -> Result<(), String> {
    loop {
        let mut running = Vec::new();
        for (rank, mut child) in children {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => {}
                Ok(Some(status)) => {
                    stop_all(&mut running);
                    return Err(failure(rank, status));
                }
                Ok(None) => running.push((rank, child)),
                Err(e) => {
                    running.push((rank, child));
                    stop_all(&mut running);
                    return Err(format!("cannot wait for rank {rank}: {e}"));
                }
            }
        }
        if running.is_empty() {
            return Ok(());
        }
        children = running;
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop_all(children: &mut [(usize, Child)]) {
    for (_, c) in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn failure(rank: usize, status: ExitStatus) -> String {
    format!("rank {rank} failed ({status}); the other ranks were stopped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn rank_variables_are_read_with_torchrun_fallbacks() {
        assert_eq!(rank_env(env(&[])).unwrap(), None);
        let r = rank_env(env(&[("CONDOR_RANK", "1"), ("CONDOR_WORLD_SIZE", "2"), ("CONDOR_GPU", "3")])).unwrap();
        assert_eq!(r, Some(RankEnv { rank: 1, world: 2, gpu: Some(3), nccl_id: None }));
        let t = rank_env(env(&[("RANK", "5"), ("WORLD_SIZE", "8"), ("LOCAL_RANK", "1"), ("CONDOR_NCCL_ID", "ab")]))
            .unwrap()
            .unwrap();
        assert_eq!((t.rank, t.world, t.gpu, t.nccl_id.as_deref()), (5, 8, Some(1), Some("ab")));
        assert!(rank_env(env(&[("RANK", "0")])).unwrap_err().contains("WORLD_SIZE"));
        assert!(rank_env(env(&[("RANK", "2"), ("WORLD_SIZE", "2")])).unwrap_err().contains("outside"));
        assert!(rank_env(env(&[("RANK", "x"), ("WORLD_SIZE", "2")])).unwrap_err().contains("RANK=\"x\""));
    }

    #[test]
    fn gpu_lists_are_indices_named_once() {
        assert_eq!(parse_gpus("0, 1,3").unwrap(), vec![0, 1, 3]);
        assert!(parse_gpus("0,0").unwrap_err().contains("twice"));
        assert!(parse_gpus("0,a").unwrap_err().contains("\"a\""));
        assert!(parse_gpus("").is_err());
    }

    #[test]
    fn a_group_of_one_needs_no_nccl() {
        let one = RankEnv { rank: 0, world: 1, gpu: None, nccl_id: None };
        let g = join_group(&one, &candle_core::Device::Cpu).unwrap();
        assert_eq!((g.rank(), g.world_size()), (0, 1));
    }

    #[test]
    #[cfg(not(feature = "nccl"))]
    fn two_ranks_without_nccl_say_how_to_build_it() {
        let two = RankEnv { rank: 0, world: 2, gpu: None, nccl_id: Some("00".repeat(128)) };
        assert!(join_group(&two, &candle_core::Device::Cpu).err().unwrap().contains("--features nccl"));
        assert!(launch(std::path::Path::new("condor"), &[], &[0, 1]).unwrap_err().contains("--features nccl"));
    }

    #[test]
    fn a_failing_rank_stops_the_others() {
        // Rank 0 sleeps, rank 1 fails at once: the launcher's wait reports rank 1 and kills rank 0.
        let sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        let failing = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let started = std::time::Instant::now();
        let err = wait_all(vec![(0, sleeper), (1, failing)]).unwrap_err();
        assert!(err.contains("rank 1 failed"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20), "rank 0 was stopped, not waited for");
    }
}
