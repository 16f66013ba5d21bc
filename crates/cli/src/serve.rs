//! `condor serve`: the web page and JSON API of condor-serve over one checkpoint.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Result};
use condor::core::Registry;
use condor_serve::{App, Limits};

use crate::args::ServeArgs;

/// `condor serve`: loads the checkpoint once, then serves until Ctrl-C.
pub(crate) fn serve(args: ServeArgs, registry: &Registry) -> Result<()> {
    let host: IpAddr = args.host.parse().map_err(|_| {
        anyhow::anyhow!("--host must be an IP address such as 127.0.0.1 or 0.0.0.0, not `{}`", args.host)
    })?;
    let limits = limits(&args)?;
    let device = condor::parse_device(&args.device).map_err(anyhow::Error::msg)?;
    let (model, path) = condor::txt2img::open_checkpoint(args.checkpoint.as_deref(), registry, &device)?;
    let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let app = App::new(model, id, limits)?;
    if !host.is_loopback() {
        eprintln!("warning: listening on {host}: other machines can reach this server and use its CPU");
    }
    let mut said = Ok(());
    condor_serve::run(app, SocketAddr::new(host, args.port), |bound| {
        said = (|| -> std::io::Result<()> {
            writeln!(std::io::stdout(), "serving {} on http://{bound}/ (Ctrl-C stops)", path.display())?;
            std::io::stdout().flush()
        })();
    })?;
    Ok(said?)
}

/// The server's limits from the command line.
fn limits(args: &ServeArgs) -> Result<Limits> {
    if args.max_images == 0 || args.workers == 0 || args.timeout == 0 {
        bail!("--max-images, --workers and --timeout must be at least 1");
    }
    Ok(Limits {
        max_images: args.max_images,
        max_queued: args.max_queued,
        workers: args.workers,
        request_timeout: Duration::from_secs(args.timeout),
        ..Limits::default()
    })
}
