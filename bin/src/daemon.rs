//! `-daemon` of `sluice broker start` and `sluice keeper start` (kafka-server-start.sh's and
//! zkServer.sh's background start): the same command runs again as a child in its own
//! process group, its output going to a file; the parent waits until the child says it
//! serves (or exits, showing why) and returns.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client_args::KeyValue;

/// How long the parent waits for the child to serve.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// `config`'s text with `--override` settings applied (what `start` and `stop` of a broker
/// or keeper parse).
pub fn config_text(config: &Path, overrides: &[KeyValue]) -> Result<String> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
    let pairs: Vec<(String, String)> = overrides.iter().map(|o| (o.key.clone(), o.value.clone())).collect();
    Ok(sluice_config::properties::apply_overrides(&text, &pairs))
}

/// Runs `sluice WHAT start CONFIG [--override k=v ...]` in the background with its output in
/// `out`; returns once `out` holds a line starting with `WHAT listening on ` (printing it),
/// or fails with the output's tail if the child exits first or does not get there in time.
pub fn start(what: &str, config: &Path, overrides: &[KeyValue], out: &Path) -> Result<()> {
    let mut args: Vec<OsString> = vec![what.into(), "start".into(), config.into()];
    let mut flags = String::new();
    for o in overrides {
        args.push("--override".into());
        args.push(format!("{}={}", o.key, o.value).into());
        flags.push_str(&format!(" --override {}={}", o.key, o.value));
    }
    let stop = format!("sluice {what} stop {}{flags}", config.display());
    let ready = format!("{what} listening on ");
    let ready = ready.as_str();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = std::fs::File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    let exe = std::env::current_exe().context("cannot find the sluice executable")?;
    let mut child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("output file")?)
        .stderr(log)
        // Its own process group: the terminal's Ctrl-C and the shell's exit do not reach it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start the {what}"))?;
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with(ready)) {
            println!("{line}");
            println!(
                "{what} running in the background (pid {}); its output goes to {}; stop it with: {stop}",
                child.id(),
                out.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("waiting for the child")? {
            bail!(
                "the {what} exited ({status}) before serving; its output ({}):\n{}",
                out.display(),
                tail(&text)
            );
        }
        if started.elapsed() > READY_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the {what} did not serve within {READY_WITHIN:?} and was stopped; its output ({}):\n{}",
                out.display(),
                tail(&text)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `-daemon` (Kafka's and ZooKeeper's scripts' spelling) as clap's `--daemon`.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter().map(|a| if a == "-daemon" { OsString::from("--daemon") } else { a }).collect()
}
