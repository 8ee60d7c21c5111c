//! The process runtime with the minimal sandbox: what a Wisp that is not root gets
//! (process group, rlimits, a private `TMPDIR` under the data directory). The
//! end-to-end tests run as root with the full sandbox; these keep the fallback honest.
//! Real python3 processes, real Runtime API, no server.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bytes::Bytes;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wisp_core::{ErrorCode, FunctionConfig, FunctionRuntime, Kind};
use wisp_runtime::process::{ProcessConfig, ProcessRuntime, Sandbox, ShimCommand};
use wisp_runtime::{Function, FunctionSpec, Input, Invocation, InvokeError, Logs, Output, Runtime};

fn python_kit() -> Bytes {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/native/python-kit");
    wisp_package::pack_dir(&kit, &wisp_package::UnpackLimits::default())
        .unwrap()
        .into()
}

struct Setup {
    _data: tempfile::TempDir,
    instances: std::path::PathBuf,
    function: Arc<dyn Function>,
}

async fn setup(timeout: Duration, memory_mb: u32) -> Setup {
    let data = tempfile::tempdir().unwrap();
    let shim = ShimCommand {
        program: env!("CARGO_BIN_EXE_wisp-instance-shim").into(),
        args: vec![wisp_runtime::process::SHIM_ARG.to_string()],
    };
    let config = ProcessConfig::new(data.path(), Sandbox::minimal(), shim);
    let instances = config.instances_dir.clone();
    let runtime = ProcessRuntime::new(config).unwrap();
    let mut fc = FunctionConfig::new(Kind::Event);
    fc.runtime = FunctionRuntime::Python;
    fc.handler = Some("app.handler".into());
    fc.timeout = timeout;
    fc.memory_mb = memory_mb;
    let spec = FunctionSpec {
        name: "kit".into(),
        code_hash: "0123abcd".into(),
        config: fc,
        services: wisp_runtime::Services::none(),
    };
    let function = runtime.compile(spec, python_kit()).await.unwrap();
    Setup {
        _data: data,
        instances,
        function,
    }
}

async fn invoke(function: &Arc<dyn Function>, event: Value) -> (Result<Value, InvokeError>, Logs) {
    let logs = Arc::new(Mutex::new(None));
    let sink = logs.clone();
    let invocation = Invocation {
        id: uuid_like(),
        input: Input::Event(Bytes::from(event.to_string())),
        services: wisp_runtime::Services::none(),
        on_finish: Some(Box::new(move |finished| {
            *sink.lock().unwrap() = Some(finished.logs)
        })),
        context: Default::default(),
        client_context: None,
        qualifier: None,
    };
    let result = function.invoke(invocation).await.map(|output| match output {
        Output::Event(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Output::Http(_) => panic!("an http answer from an event function"),
    });
    let logs = logs.lock().unwrap().take().unwrap();
    (result, logs)
}

fn uuid_like() -> String {
    format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test]
async fn limits_and_a_private_tmpdir_without_privileges() {
    let s = setup(Duration::from_secs(2), 128).await;
    // Open files: RLIMIT_NOFILE.
    let (files, _) = invoke(&s.function, json!({"action": "open_files"})).await;
    let files = files.unwrap();
    assert_eq!(files["error"], "EMFILE", "{files}");
    assert_eq!(files["highest_fd"], 1023, "{files}");
    // Memory: RLIMIT_AS makes the allocation fail inside the function.
    let (err, _) = invoke(&s.function, json!({"action": "memory", "mb": 400})).await;
    let err = err.unwrap_err();
    assert_eq!(err.report().unwrap().error_type, "MemoryError", "{err}");
    // TMPDIR: a directory of the instance's own, under the data directory.
    let (tmp, _) = invoke(&s.function, json!({"action": "tmp_write", "name": "x"})).await;
    let tmp = tmp.unwrap();
    let dir = Path::new(tmp["tmpdir"].as_str().unwrap()).to_path_buf();
    assert!(dir.starts_with(&s.instances), "{tmp}");
    assert!(dir.join("x").exists());
    // A crash ends the instance; its temp dir goes with it.
    let (err, _) = invoke(&s.function, json!({"action": "exit", "code": 2})).await;
    assert_eq!(err.unwrap_err().report().unwrap().error_type, "Runtime.ExitError");
    for _ in 0..100 {
        if !dir.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!dir.exists(), "{} survived its instance", dir.display());
}

#[tokio::test]
async fn a_timeout_kills_the_process_group() {
    let s = setup(Duration::from_millis(800), 128).await;
    let marker = format!("9{}.75", std::process::id());
    let (err, _) = invoke(&s.function, json!({"action": "orphans", "marker": marker})).await;
    let err = err.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert_eq!(err.report().unwrap().error_type, "Sandbox.Timedout");
    // The child in the process group dies with it. (The one that started a session
    // of its own escapes without a PID namespace: it is killed here by hand.)
    let mut in_group_alive = true;
    for _ in 0..100 {
        let alive = sleepers(&marker);
        in_group_alive = alive.iter().any(|(_, pgid_is_own)| !pgid_is_own);
        if !in_group_alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (pid, _) in sleepers(&marker) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(
        !in_group_alive,
        "the child in the instance's process group survived"
    );
    // Logs of the invocation that timed out are still its logs.
    let (ok, logs) = invoke(&s.function, json!({"action": "log", "text": "after"})).await;
    assert_eq!(ok.unwrap()["logged"], true);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("to stdout: after"),
        "{logs:?}"
    );
}

/// Live `sleep MARKER` processes: (pid, whether it leads its own session).
fn sleepers(marker: &str) -> Vec<(i32, bool)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the command: state ppid pgrp session …
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let session: i32 = fields.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
        found.push((pid, session == pid));
    }
    found
}
