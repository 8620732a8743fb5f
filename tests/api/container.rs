//! What can be tested of the container image without a Docker engine: the
//! runtime stage's environment, command and HEALTHCHECK, read from the
//! Dockerfile itself and run against the binary it ships.

use std::process::Command;
use std::time::Duration;

/// The runtime stage's instructions (everything after its `FROM`).
fn runtime_stage() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let lines: Vec<String> = dockerfile.lines().map(str::to_owned).collect();
    let start = lines.iter().rposition(|l| l.starts_with("FROM ")).expect("a FROM line");
    assert!(lines[start].contains(" AS runtime"), "the last stage is the runtime stage: {}", lines[start]);
    lines[start..].to_vec()
}

/// The JSON-array arguments of the instruction `name` in the runtime stage.
fn exec_form(stage: &[String], name: &str) -> Vec<String> {
    let line = stage.iter().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
    let json = &line[line.find('[').unwrap()..=line.rfind(']').unwrap()];
    serde_json::from_str(json).unwrap()
}

/// The runtime image runs as non-root, and its ENTRYPOINT + CMD with its ENV
/// start a server that its own HEALTHCHECK command finds healthy (and
/// unhealthy once the server is gone).
#[tokio::test]
async fn runtime_stage_starts_and_passes_its_healthcheck() {
    let stage = runtime_stage();
    assert!(stage.iter().any(|l| l.trim() == "USER nonroot"), "the image must not run as root");
    let env: Vec<(String, String)> = stage
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(env.iter().any(|(k, v)| k == "BLOGQL_BIND" && v.starts_with("0.0.0.0:")), "{env:?}");
    let entrypoint = exec_form(&stage, "ENTRYPOINT");
    let cmd = exec_form(&stage, "CMD");
    assert_eq!(
        (entrypoint.as_slice(), cmd.as_slice()),
        (["/usr/local/bin/blogql".to_owned()].as_slice(), ["serve".to_owned()].as_slice())
    );
    let health_line = stage.iter().find(|l| l.starts_with("HEALTHCHECK")).expect("a HEALTHCHECK");
    let health = {
        let json = &health_line[health_line.find('[').unwrap()..=health_line.rfind(']').unwrap()];
        serde_json::from_str::<Vec<String>>(json).unwrap()
    };
    assert_eq!(health[0], "/usr/local/bin/blogql");

    // The image's environment and command, with the port and data directory
    // moved to where this machine can host them (`0.0.0.0` kept, as in the image).
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("0.0.0.0:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_blogql"));
    server.args(&cmd).env_remove("MONGODB_URI").env("RUST_LOG", "off");
    for (k, v) in &env {
        match k.as_str() {
            "BLOGQL_BIND" => server.env(k, &bind),
            "BLOGQL_DATA_DIR" => server.env(k, dir.path()),
            _ => server.env(k, v),
        };
    }
    let mut server = Killed(server.stdout(std::process::Stdio::null()).spawn().unwrap());
    let started = std::time::Instant::now();
    while reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the image's command did not start a server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dir.path().join("blogql.redb").exists(), "the store lives in BLOGQL_DATA_DIR");
    let probe =
        || Command::new(env!("CARGO_BIN_EXE_blogql")).args(&health[1..]).env("BLOGQL_BIND", &bind).output().unwrap();
    let healthy = probe();
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));
    let _ = server.0.kill();
    let _ = server.0.wait();
    assert!(!probe().status.success(), "the healthcheck must fail once the server is gone");
}

/// Kills the child process when dropped, so a failed assertion leaves no server behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
