//! Commands on checkpoints and exported models: sample, interpolate, export, recalibrate, inspect.

use std::io::Write;

use anyhow::Result;
use condor::core::Registry;
use condor::train::export::{export_generator, recalibrate_checkpoint};
use condor::train::Checkpoint;

use crate::args::{ExportArgs, InspectArgs, RecalibrateArgs};

/// `condor sample`: prints what `condor::txt2img` says it wrote.
pub(crate) fn sample(args: &condor::txt2img::SampleArgs, registry: &Registry) -> Result<()> {
    print_lines(|say| condor::txt2img::run_with(args, registry, say))
}

/// `condor translate`: prints what `condor::img2img` says it wrote.
pub(crate) fn translate(args: &condor::img2img::TranslateArgs, registry: &Registry) -> Result<()> {
    print_lines(|say| condor::img2img::run(args, registry, say))
}

/// `condor interpolate`: prints what `condor::interpolation` says it wrote.
pub(crate) fn interpolate(args: &condor::interpolation::InterpolateArgs, registry: &Registry) -> Result<()> {
    print_lines(|say| condor::interpolation::run(args, registry, say))
}

/// Runs a command that reports through a line sink, then prints its lines (an error, rather than a
/// panic, when standard output is closed).
fn print_lines<T>(command: impl FnOnce(&mut dyn FnMut(String)) -> Result<T>) -> Result<()> {
    let mut lines = Vec::new();
    command(&mut |line| lines.push(line))?;
    for line in lines {
        say!("{line}");
    }
    Ok(())
}

/// `condor export`.
pub(crate) fn export(args: ExportArgs) -> Result<()> {
    let ExportArgs { checkpoint, out, text_head } = args;
    let file = condor::infer::WeightsFile::read(&checkpoint, &condor::candle_core::Device::Cpu)?;
    if condor::infer::TranslationCard::of(&file)?.is_some() {
        anyhow::ensure!(text_head.is_none(), "--text-head: a translation model has no text encoder");
        condor::infer::translator::export_translation(&file, &out)?;
        let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        say!("wrote {} ({:.1} MB, both translators and their card)", out.display(), bytes as f64 / 1e6);
        return Ok(());
    }
    export_generator(&checkpoint, &out, text_head.as_deref())?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    say!("wrote {} ({:.1} MB, generator and model card)", out.display(), bytes as f64 / 1e6);
    Ok(())
}

/// `condor recalibrate`.
pub(crate) fn recalibrate(args: RecalibrateArgs, registry: &Registry) -> Result<()> {
    let RecalibrateArgs { checkpoint, out, device } = args;
    let device = condor::parse_device(&device).map_err(anyhow::Error::msg)?;
    match recalibrate_checkpoint(&checkpoint, &out, registry, &device)? {
        Some(batches) => {
            say!("wrote {} (batch-norm statistics re-estimated on {batches} batches)", out.display())
        }
        None => {
            say!("{}: the generator has no batch norm; nothing to do, nothing written", checkpoint.display())
        }
    }
    Ok(())
}

/// `condor inspect`.
pub(crate) fn inspect(args: InspectArgs) -> Result<()> {
    let InspectArgs { checkpoint } = args;
    let file = condor::infer::WeightsFile::read(&checkpoint, &condor::candle_core::Device::Cpu)?;
    say!("checkpoint: {}", checkpoint.display());
    say!("model card: {}", serde_json::to_string_pretty(&condor::train::checkpoint::card_of(&file)?)?);
    if file.metadata.contains_key("condor.config") {
        let ckpt = Checkpoint::from_file(file)?;
        say!("state: {}", serde_json::to_string_pretty(&ckpt.state)?);
        say!("config:\n{}", ckpt.config.to_toml());
        say_tensors(&ckpt.tensors)?;
    } else {
        say!("(an exported model: no run config or training state)");
        say_tensors(&file.tensors)?;
    }
    Ok(())
}

/// Prints tensors by name with their dtype and shape, and the number of values.
fn say_tensors(tensors: &std::collections::HashMap<String, condor::candle_core::Tensor>) -> Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    say!("tensors ({}):", names.len());
    for name in &names {
        let t = &tensors[*name];
        say!("  {name:<48} {:?} {:?}", t.dtype(), t.dims());
    }
    say!("total values: {}", tensors.values().map(|t| t.elem_count()).sum::<usize>());
    Ok(())
}
