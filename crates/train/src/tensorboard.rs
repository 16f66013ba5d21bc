//! TensorBoard event files: the records TensorBoard reads (TFRecord framing of `Event` protocol
//! buffers), written beside a run's `log.jsonl`, so that `tensorboard --logdir runs` shows its
//! scalars and sample grids. Only the messages Condor writes are declared here; their field numbers
//! are TensorFlow's (`event.proto`, `summary.proto`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{io_err, Result};

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The training step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The file format, first in every file: `brain.Event:2`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Values at a step.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A session marker; `START` at a step makes TensorBoard drop the events of earlier files from
    /// that step on (a resumed run logs them again).
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The series the value belongs to (`loss/generator`).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The value.
    #[prost(oneof = "Kind", tags = "2, 4")]
    pub kind: Option<Kind>,
}

/// `Summary.Value.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// A scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    /// An encoded image.
    #[prost(message, tag = "4")]
    Image(Image),
}

/// `tensorflow.Summary.Image`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    /// Height in pixels.
    #[prost(int32, tag = "1")]
    pub height: i32,
    /// Width in pixels.
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grey, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    /// The PNG file's bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `tensorflow.SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionLog {
    /// 1 = START.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `SessionLog.status` of a (re)started run.
pub const SESSION_START: i32 = 1;

/// CRC-32C as TFRecord stores it: rotated and offset, so that a CRC of CRCs is not a CRC.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length (u64, little-endian), its masked CRC, the data, the data's masked CRC.
pub fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The events of a TFRecord file's bytes; errors name the first record that is torn or corrupt.
pub fn read_events(bytes: &[u8]) -> std::result::Result<Vec<Event>, String> {
    use prost::Message;
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let bad = |what: &str| format!("record {} at byte {at}: {what}", events.len());
        let header = bytes.get(at..at + 12).ok_or_else(|| bad("torn header"))?;
        let length = u64::from_le_bytes(header[..8].try_into().expect("8 bytes")) as usize;
        if masked_crc(&header[..8]) != u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) {
            return Err(bad("length CRC mismatch"));
        }
        let data = bytes.get(at + 12..at + 12 + length).ok_or_else(|| bad("torn data"))?;
        let crc = bytes.get(at + 12 + length..at + 16 + length).ok_or_else(|| bad("torn data CRC"))?;
        if masked_crc(data) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(bad("data CRC mismatch"));
        }
        events.push(Event::decode(data).map_err(|e| bad(&e.to_string()))?);
        at += 16 + length;
    }
    Ok(events)
}

/// An event file being written: `events.out.tfevents.<seconds>.condor.<pid>` in its folder.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Starts a new event file in `dir` (created if needed). `resumed_at` marks a resumed run's first
    /// step, so that TensorBoard drops what earlier files logged from that step on.
    pub fn create(dir: &Path, resumed_at: Option<u64>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let now = since_epoch();
        // Nanoseconds keep two files started in the same second apart and in order.
        let name =
            format!("events.out.tfevents.{}.{:09}.condor.{}", now.as_secs(), now.subsec_nanos(), std::process::id());
        let path = dir.join(name);
        let file = File::create(&path).map_err(io_err(&path))?;
        let mut writer = Self { path, file: BufWriter::new(file) };
        writer.write(0, What::FileVersion("brain.Event:2".into()))?;
        if let Some(step) = resumed_at {
            writer.write(step, What::SessionLog(SessionLog { status: SESSION_START }))?;
        }
        Ok(writer)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Scalars at `step`, by tag.
    pub fn scalars(&mut self, step: u64, values: &[(String, f32)]) -> Result<()> {
        let value =
            values.iter().map(|(tag, v)| Value { tag: tag.clone(), kind: Some(Kind::SimpleValue(*v)) }).collect();
        self.write(step, What::Summary(Summary { value }))
    }

    /// The PNG file at `png` as image `tag` at `step`.
    pub fn png(&mut self, step: u64, tag: &str, png: &Path) -> Result<()> {
        let bytes = std::fs::read(png).map_err(io_err(png))?;
        let (width, height) = image::ImageReader::with_format(std::io::Cursor::new(&bytes), image::ImageFormat::Png)
            .into_dimensions()
            .map_err(|e| io_err(png)(std::io::Error::other(e)))?;
        let image = Image { height: height as i32, width: width as i32, colorspace: 3, encoded_image_string: bytes };
        let value = vec![Value { tag: tag.into(), kind: Some(Kind::Image(image)) }];
        self.write(step, What::Summary(Summary { value }))
    }

    /// Writes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(io_err(&self.path))
    }

    fn write(&mut self, step: u64, what: What) -> Result<()> {
        use prost::Message;
        let wall_time = since_epoch().as_secs_f64();
        let event = Event { wall_time, step: step as i64, what: Some(what) };
        self.file.write_all(&record(&event.encode_to_vec())).map_err(io_err(&self.path))
    }
}

/// Wall time since the Unix epoch (zero on a clock set before it).
fn since_epoch() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The steps at which the event files in `dir` (read in name order, as TensorBoard does) hold `tag`,
/// after TensorBoard's purge at each session start: what its charts show.
pub fn steps_shown(dir: &Path, tag: &str) -> std::result::Result<Vec<u64>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("tfevents")))
        .collect();
    files.sort();
    let mut steps = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        for event in read_events(&bytes)? {
            match event.what {
                Some(What::SessionLog(log)) if log.status == SESSION_START => {
                    steps.retain(|&s| (s as i64) < event.step);
                }
                Some(What::Summary(summary)) if summary.value.iter().any(|v| v.tag == tag) => {
                    steps.push(event.step as u64)
                }
                _ => {}
            }
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crcs_match_tensorflows_and_records_round_trip() {
        // CRC-32C of "123456789" is 0xE3069283 (RFC 3720's check value). The masked values are what
        // TensorBoard's own `masked_crc32c` (tensorboard.compat.tensorflow_stub) returns.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc(&0u64.to_le_bytes()), 0x0798_0329);

        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), Some(40)).unwrap();
        w.scalars(41, &[("loss/generator".into(), 0.5), ("loss/discriminator".into(), 1.25)]).unwrap();
        let png = dir.path().join("grid.png");
        image::RgbImage::from_pixel(6, 4, image::Rgb([9, 8, 7])).save(&png).unwrap();
        w.png(41, "samples", &png).unwrap();
        w.flush().unwrap();
        let events = read_events(&std::fs::read(w.path()).unwrap()).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].what, Some(What::FileVersion("brain.Event:2".into())));
        assert_eq!((events[1].step, &events[1].what), (40, &Some(What::SessionLog(SessionLog { status: 1 }))));
        let Some(What::Summary(s)) = &events[2].what else { panic!("{:?}", events[2]) };
        assert_eq!(s.value[1].tag, "loss/discriminator");
        assert_eq!(s.value[1].kind, Some(Kind::SimpleValue(1.25)));
        let Some(What::Summary(s)) = &events[3].what else { panic!("{:?}", events[3]) };
        let Some(Kind::Image(img)) = &s.value[0].kind else { panic!() };
        assert_eq!(
            (img.width, img.height, img.encoded_image_string.len()),
            (6, 4, std::fs::metadata(&png).unwrap().len() as usize)
        );

        let mut torn = std::fs::read(w.path()).unwrap();
        let last = torn.len() - 1;
        torn[last] ^= 1;
        assert!(read_events(&torn).unwrap_err().contains("record 3"));
    }
}
