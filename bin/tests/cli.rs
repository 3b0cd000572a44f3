//! The `sluice` command as a user runs it: real processes, real files, real QUIC.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.env_remove("SLUICE_TLS_CA").env_remove("SLUICE_TLS_CERT").env_remove("SLUICE_TLS_KEY");
    c.env("RUST_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run sluice")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// A child process killed (SIGKILL) and reaped when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_perf_server(dir: &Path) -> (Proc, String) {
    let mut child = sluice()
        .args(["transport-perf-server", "--listen", "127.0.0.1:0"])
        .arg("--tls-ca")
        .arg(dir.join("ca.pem"))
        .arg("--tls-cert")
        .arg(dir.join("srv.pem"))
        .arg("--tls-key")
        .arg(dir.join("srv.key"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start server");
    let stdout = child.stdout.take().expect("stdout");
    let proc_ = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line:?}"))
        .to_string();
    (proc_, addr)
}

#[test]
fn help_lists_every_subcommand_and_the_credential_flags() {
    let out = run(sluice().arg("--help"));
    assert!(out.status.success());
    let help = text(&out.stdout);
    for sub in ["certs", "transport-perf-test", "transport-perf-server", "--log-format"] {
        assert!(help.contains(sub), "--help lacks {sub}:\n{help}");
    }
    let out = run(sluice().args(["transport-perf-test", "--help"]));
    let help = text(&out.stdout);
    for flag in ["--tls-ca", "--tls-cert", "--tls-key", "--command-config", "SLUICE_TLS_CA", "--connect"] {
        assert!(help.contains(flag), "transport-perf-test --help lacks {flag}:\n{help}");
    }
}

#[test]
fn certs_init_writes_private_keys_0600_and_refuses_to_replace_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("certs");
    let out =
        run(sluice().args(["certs", "init", "--dir"]).arg(&d).args(["--node", "k1", "--client", "cli"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("k1.pem"));
    #[cfg(unix)]
    for f in ["ca.key", "k1.key", "cli.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join(f)).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let out = run(sluice().args(["certs", "init", "--dir"]).arg(&d).args(["--node", "k1"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--force"), "{}", text(&out.stderr));

    let out =
        run(sluice().args(["certs", "issue", "--dir"]).arg(&d).args(["b9", "--san", "broker9.internal"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(d.join("b9.pem").exists() && d.join("b9.key").exists());
}

#[test]
fn perf_test_runs_between_two_processes_and_reports_throughput() {
    let out = run(sluice().args([
        "transport-perf-test",
        "--bulk-bytes",
        "8M",
        "--frame-bytes",
        "256K",
        "--rpc-seconds",
        "0.3",
        "--concurrency",
        "1,4",
    ]));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    assert!(stdout.contains("client \"perf-client\""), "{stdout}");
    assert!(stdout.contains("server \"transport-perf-server\""), "{stdout}");
    let bulk = stdout.lines().find(|l| l.starts_with("bulk")).expect("bulk line");
    assert!(bulk.contains("8 MiB") && bulk.contains("MB/s"), "{bulk}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("rpc") && l.contains("calls/s")).count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("quic path:") && stdout.contains("packets sent"), "{stdout}");

    // The bare-transport comparison and the ordered-channel mode.
    let out = run(sluice().args([
        "transport-perf-test",
        "--bulk-via",
        "raw",
        "--bulk-bytes",
        "8M",
        "--rpc-via",
        "channel",
        "--rpc-seconds",
        "0.2",
        "--concurrency",
        "2",
    ]));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("bulk raw") && l.contains("8 MiB")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("rpc") && l.contains("channel")), "{stdout}");
}

#[test]
fn client_credentials_come_from_flags_environment_or_command_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out =
        run(sluice().args(["certs", "init", "--dir"]).arg(d).args(["--node", "srv", "--client", "cli"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_server, addr) = start_perf_server(d);
    let quick = ["--bulk-bytes", "1M", "--frame-bytes", "256K", "--rpc-seconds", "0.1", "--concurrency", "1"];

    // --- environment variables
    let out = run(sluice()
        .args(["transport-perf-test", "--connect", &addr])
        .args(quick)
        .env("SLUICE_TLS_CA", d.join("ca.pem"))
        .env("SLUICE_TLS_CERT", d.join("cli.pem"))
        .env("SLUICE_TLS_KEY", d.join("cli.key")));
    assert!(out.status.success(), "env: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("client \"cli\""));

    // --- Kafka-style --command-config
    let cfg = d.join("client.properties");
    std::fs::write(
        &cfg,
        format!(
            "# client TLS\ntls.ca.file={}\ntls.cert.file={}\ntls.key.file={}\n",
            d.join("ca.pem").display(),
            d.join("cli.pem").display(),
            d.join("cli.key").display()
        ),
    )
    .expect("write config");
    let out = run(sluice()
        .args(["transport-perf-test", "--connect", &addr])
        .args(quick)
        .arg("--command-config")
        .arg(&cfg));
    assert!(out.status.success(), "command-config: {}", text(&out.stderr));

    // --- nothing given: the error names every way to give it
    let out = run(sluice().args(["transport-perf-test", "--connect", &addr]).args(quick));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--tls-ca") && err.contains("SLUICE_TLS_CA") && err.contains("--command-config"),
        "{err}"
    );

    // --- a missing file is named
    let out = run(sluice()
        .args(["transport-perf-test", "--connect", &addr])
        .args(quick)
        .arg("--command-config")
        .arg(&cfg)
        .args(["--tls-key", "/nonexistent/cli.key"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot read tls.key.file /nonexistent/cli.key"),
        "{}",
        text(&out.stderr)
    );

    // --- a bad config line names the line
    std::fs::write(&cfg, "tls.ca.file=x\ntls.cert=y\n").expect("write");
    let out = run(sluice()
        .args(["transport-perf-test", "--connect", &addr])
        .args(quick)
        .arg("--command-config")
        .arg(&cfg));
    assert!(
        text(&out.stderr).contains("client.properties:2: unknown key \"tls.cert\""),
        "{}",
        text(&out.stderr)
    );

    // --- a certificate from another CA is refused with advice
    let other = d.join("other");
    assert!(run(sluice().args(["certs", "init", "--dir"]).arg(&other).args(["--client", "eve"]))
        .status
        .success());
    let out = run(sluice()
        .args(["transport-perf-test", "--connect", &addr])
        .args(quick)
        .arg("--tls-ca")
        .arg(d.join("ca.pem"))
        .arg("--tls-cert")
        .arg(other.join("eve.pem"))
        .arg("--tls-key")
        .arg(other.join("eve.key")));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("refused our certificate: unknown issuer"), "{}", text(&out.stderr));
}
