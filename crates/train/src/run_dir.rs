//! A run directory: the resolved config, a JSON-lines log, checkpoints, sample plots and loss curves.
//!
//! ```text
//! <runs>/<name>/
//!   config.toml                      the resolved run config
//!   log.jsonl                        one StepRecord per logged step
//!   tensorboard/events.out.tfevents.*  the same scalars and the sample grids, for TensorBoard
//!   losses.png                       loss and score curves
//!   checkpoints/step-000001000.safetensors
//!   samples/step-000001000.png
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use condor_infer::plot::{curves_png, Series};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result};
use crate::tensorboard::EventWriter;

/// What the trainer logs for one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Completed iterations after this step.
    pub step: u64,
    /// Discriminator loss (of its last step in the iteration).
    pub loss_d: f32,
    /// Generator loss.
    pub loss_g: f32,
    /// The generator's extra loss term (conditioning augmentation's KL), included in `loss_g`.
    #[serde(default)]
    pub g_regularization: f32,
    /// The R1 penalty on iterations that apply it (0 on the others and without R1).
    #[serde(default)]
    pub r1_penalty: f32,
    /// Mean D(x) on real samples: a probability for BCE losses, the raw score otherwise.
    pub d_real: f32,
    /// Mean D(G(z)) on generated samples, in the same units.
    pub d_fake: f32,
    /// Mean D(x, wrong caption) on real samples paired with another sample's caption (GAN-CLS runs
    /// only), in the same units: near D(x) while the discriminator still ignores the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_wrong: Option<f32>,
    /// Instance-noise level used in the step.
    pub noise_sigma: f32,
    /// Wall time of the step in seconds.
    pub step_time_s: f32,
    /// The recipe's other scalars, by name.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, f32>,
}

/// Writes the run's curves: losses (top: discriminator red, generator blue) and mean discriminator
/// scores (bottom: D(x) green, D(G(z)) orange, D(x) with a wrong caption purple when logged).
pub fn write_loss_plot(path: &Path, records: &[StepRecord]) -> Result<()> {
    let series = |name: &str, colour: [u8; 3], f: fn(&StepRecord) -> f32| Series {
        name: name.into(),
        colour,
        points: records.iter().map(|r| (r.step as f32, f(r))).collect(),
    };
    let losses = vec![
        series("discriminator loss", [200, 40, 40], |r| r.loss_d),
        series("generator loss", [40, 80, 200], |r| r.loss_g),
    ];
    let mut scores = vec![
        series("D(x) on real", [30, 150, 60], |r| r.d_real),
        series("D(G(z)) on generated", [230, 140, 20], |r| r.d_fake),
    ];
    if records.iter().any(|r| r.d_wrong.is_some()) {
        scores.push(series("D(x) with a wrong caption", [140, 60, 170], |r| r.d_wrong.unwrap_or(f32::NAN)));
    }
    if records.iter().any(|r| r.extra.contains_key("d_wrong_box")) {
        let wrong_box = |r: &StepRecord| r.extra.get("d_wrong_box").copied().unwrap_or(f32::NAN);
        scores.push(series("D(x) in a wrong box", [120, 120, 120], wrong_box));
    }
    Ok(curves_png(path, &[losses, scores])?)
}

/// A record's values as TensorBoard scalars, grouped by tag prefix: losses, discriminator scores,
/// tricks, time, and the recipe's other scalars.
pub fn tensorboard_scalars(record: &StepRecord) -> Vec<(String, f32)> {
    let mut out = vec![
        ("loss/discriminator".to_string(), record.loss_d),
        ("loss/generator".to_string(), record.loss_g),
        ("loss/generator_regularization".to_string(), record.g_regularization),
        ("loss/r1_penalty".to_string(), record.r1_penalty),
        ("D/real D(x)".to_string(), record.d_real),
        ("D/generated D(G(z))".to_string(), record.d_fake),
    ];
    if let Some(wrong) = record.d_wrong {
        out.push(("D/wrong caption D(x, c')".to_string(), wrong));
    }
    out.push(("tricks/instance_noise_sigma".to_string(), record.noise_sigma));
    out.push(("time/step_seconds".to_string(), record.step_time_s));
    out.extend(record.extra.iter().map(|(name, v)| (format!("extra/{name}"), *v)));
    out
}

/// Paths and files of one run.
pub struct RunDir {
    root: PathBuf,
    log: Option<BufWriter<File>>,
    tensorboard: Option<EventWriter>,
    /// The first step a resumed run logs again, for the next event file's session marker.
    resumed_at: Option<u64>,
}

impl RunDir {
    /// Opens (creating if needed) the run directory at `root`.
    pub fn create(root: &Path) -> Result<Self> {
        for d in [root.to_path_buf(), root.join("checkpoints"), root.join("samples"), root.join("evolution")] {
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        Ok(Self { root: root.to_path_buf(), log: None, tensorboard: None, resumed_at: None })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of TensorBoard event files (`tensorboard --logdir` it, or the runs folder).
    pub fn tensorboard_dir(&self) -> PathBuf {
        self.root.join("tensorboard")
    }

    /// The event file of this process, started on first use.
    fn events(&mut self) -> Result<&mut EventWriter> {
        if self.tensorboard.is_none() {
            self.tensorboard = Some(EventWriter::create(&self.tensorboard_dir(), self.resumed_at)?);
        }
        Ok(self.tensorboard.as_mut().expect("created above"))
    }

    /// Adds the PNG at `png` to the event file as image `tag` at `step`.
    pub fn log_image(&mut self, step: u64, tag: &str, png: &Path) -> Result<()> {
        let events = self.events()?;
        events.png(step, tag, png)?;
        events.flush()
    }

    /// Where the resolved config is written.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The JSON-lines log.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("log.jsonl")
    }

    /// The loss-curve plot.
    pub fn loss_plot_path(&self) -> PathBuf {
        self.root.join("losses.png")
    }

    /// The checkpoint for a step.
    pub fn checkpoint_path(&self, step: u64) -> PathBuf {
        self.root.join("checkpoints").join(format!("step-{step:09}.safetensors"))
    }

    /// The sample plot for a step.
    pub fn sample_path(&self, step: u64) -> PathBuf {
        self.root.join("samples").join(format!("step-{step:09}.png"))
    }

    /// The row of the evolution picture drawn at a step.
    pub fn evolution_row_path(&self, step: u64) -> PathBuf {
        self.root.join("evolution").join(format!("step-{step:09}.png"))
    }

    /// The evolution picture: one row of fixed-noise samples per stage of training.
    pub fn evolution_path(&self) -> PathBuf {
        self.root.join("evolution.png")
    }

    /// Rows of the evolution picture on disk, by step.
    pub fn evolution_rows(&self) -> Vec<(u64, PathBuf)> {
        steps_in(&self.root.join("evolution"), ".png")
    }

    /// Checkpoints on disk, oldest first.
    pub fn checkpoints(&self) -> Vec<(u64, PathBuf)> {
        steps_in(&self.root.join("checkpoints"), ".safetensors")
    }

    /// The newest checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Option<PathBuf> {
        self.checkpoints().pop().map(|(_, p)| p)
    }

    /// Deletes all but the newest `keep` checkpoints.
    pub fn prune_checkpoints(&self, keep: usize) -> Result<()> {
        let all = self.checkpoints();
        for (_, path) in all.iter().take(all.len().saturating_sub(keep)) {
            std::fs::remove_file(path).map_err(io_err(path))?;
        }
        Ok(())
    }

    /// Appends a record to the log (buffered; see [`RunDir::flush_log`]).
    pub fn append_log(&mut self, record: &StepRecord) -> Result<()> {
        let path = self.log_path();
        if self.log.is_none() {
            let f = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
            self.log = Some(BufWriter::new(f));
        }
        let line = serde_json::to_string(record).expect("records serialise");
        let log = self.log.as_mut().expect("opened above");
        writeln!(log, "{line}").map_err(io_err(&path))?;
        // Flushed at once, so that TensorBoard shows a live run.
        let events = self.events()?;
        events.scalars(record.step, &tensorboard_scalars(record))?;
        events.flush()
    }

    /// Writes buffered log lines to disk.
    pub fn flush_log(&mut self) -> Result<()> {
        let path = self.log_path();
        if let Some(log) = self.log.as_mut() {
            log.flush().map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// All records in the log. Lines that do not parse (a torn last line after a crash) are skipped.
    pub fn read_log(&self) -> Result<Vec<StepRecord>> {
        let path = self.log_path();
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut out = Vec::new();
        for line in BufReader::new(f).lines() {
            if let Ok(r) = serde_json::from_str::<StepRecord>(&line.map_err(io_err(&path))?) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Drops log records after `step`, so that a resumed run does not log a step twice (in the log,
    /// and as TensorBoard shows the event files).
    pub fn truncate_log_after(&mut self, step: u64) -> Result<()> {
        self.log = None;
        // Event files are not rewritten: the next one starts with a session marker at the first step
        // logged again, which makes TensorBoard drop what earlier files logged from there on.
        self.tensorboard = None;
        self.resumed_at = Some(step + 1);
        let kept: Vec<StepRecord> = self.read_log()?.into_iter().filter(|r| r.step <= step).collect();
        let path = self.log_path();
        let mut text = String::new();
        for r in &kept {
            text.push_str(&serde_json::to_string(r).expect("records serialise"));
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(io_err(&path))
    }
}

/// The `step-<N><suffix>` files in `folder`, by step.
fn steps_in(folder: &Path, suffix: &str) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.strip_suffix(suffix)?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_listed_pruned_and_logs_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(tmp.path()).unwrap();
        for step in [5, 10, 15] {
            std::fs::write(run.checkpoint_path(step), b"x").unwrap();
        }
        std::fs::write(tmp.path().join("checkpoints/.step-000000020.safetensors.1.tmp"), b"x").unwrap();
        assert_eq!(run.latest_checkpoint().unwrap(), run.checkpoint_path(15));
        run.prune_checkpoints(2).unwrap();
        assert_eq!(run.checkpoints().iter().map(|c| c.0).collect::<Vec<_>>(), vec![10, 15]);
        for step in 1..=6 {
            run.append_log(&StepRecord { step, ..Default::default() }).unwrap();
        }
        run.flush_log().unwrap();
        run.truncate_log_after(4).unwrap();
        run.append_log(&StepRecord { step: 5, loss_d: 1.0, ..Default::default() }).unwrap();
        run.flush_log().unwrap();
        let steps: Vec<u64> = run.read_log().unwrap().iter().map(|r| r.step).collect();
        assert_eq!(steps, vec![1, 2, 3, 4, 5]);
    }
}
