//! One process instance: the sandboxed process, its Runtime API, its output, and
//! the running of one invocation at a time on it.
//!
//! An instance is started on a cold start ([`Instance::start`]: spawn, then wait for
//! its first `next`, which ends its init), runs invocations ([`Instance::invoke`]) and
//! is stopped when it crashes, times out, or its pool lets it go. Stopping kills its
//! whole process group and cgroup and removes its private temp dir: nothing it
//! started outlives it.

use super::FunctionContext;
use super::api::{Delivery, InitState, Pending, Reply, RuntimeApi};
use super::cgroup::InstanceCgroup;
use super::network::{self, InstanceNetwork};
use super::peer::PeerCheck;
use super::pipes::Pipes;
use super::sandbox::{self, Plan};
use super::shim::ShimSpec;
use crate::invocation::{ErrorReport, InvokeError, Logs};
use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tokio::process::Child;
use wisp_core::ErrorCode;
use wisp_core::wall;

/// How long a runtime may take to start (spawn to its first `next`), as on Lambda.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Instance {
    id: String,
    child: Child,
    pgid: Option<Pid>,
    api: RuntimeApi,
    pipes: Pipes,
    cgroup: Option<InstanceCgroup>,
    /// Its network namespace and the tasks serving it, when it has one.
    _network: Option<ServedNetwork>,
    /// The private temp dir on the host, when there is no mount namespace.
    host_tmp: Option<PathBuf>,
    oom_kills_seen: u64,
    max_response: usize,
    /// False once the instance crashed, timed out or misbehaved: it is not reused.
    reusable: bool,
}

/// A failed start: the error for the invocation that needed the instance, and what
/// the runtime wrote while it tried.
pub(crate) struct StartFailure {
    pub error: InvokeError,
    pub logs: Logs,
}

impl Instance {
    /// Starts an instance and waits until its runtime asks for work. Returns the
    /// instance, how long its init took, and its init output.
    pub(crate) async fn start(ctx: &FunctionContext) -> Result<(Instance, Duration, Logs), StartFailure> {
        let started = Instant::now();
        let internal = |what: &str, e: std::io::Error| StartFailure {
            error: InvokeError::Internal(format!("cannot start an instance of `{}`: {what}: {e}", ctx.name)),
            logs: Logs::default(),
        };
        // Secret references resolve now, at each start: a secret set again reaches the
        // next instance. A missing one fails the start, never an empty value.
        let function_env = ctx
            .env
            .resolve(ctx.services.secret_values().as_ref())
            .map_err(|missing| StartFailure {
                logs: Logs {
                    stderr: missing.log_line(),
                    ..Logs::default()
                },
                error: missing.into_invoke_error(),
            })?;
        let mut shim = ctx
            .spawner
            .take()
            .map_err(|e| internal("cannot start its shim", e))?;
        let id = shim.id.clone();
        // Until the instance owns it, a failure removes the cgroup with the shim.
        let mut cgroup = CgroupGuard(shim.cgroup.take());
        let memory_bytes = u64::from(ctx.memory_mb) * 1024 * 1024;
        if let Some(cgroup) = &cgroup.0 {
            cgroup
                .limit_memory(memory_bytes)
                .map_err(|e| internal("cannot cap its memory", e))?;
        }
        let (Some(stdout), Some(stderr)) = (shim.child.stdout.take(), shim.child.stderr.take()) else {
            return Err(internal(
                "no pipes",
                std::io::Error::other("stdout or stderr missing"),
            ));
        };
        let pipes = Pipes::new(stdout, stderr, ctx.limits.max_log_bytes_per_invocation)
            .map_err(|e| internal("cannot read its output", e))?;
        let network = match &ctx.networks {
            Some(networks) => Some(
                networks
                    .take()
                    .await
                    .map_err(|e| internal("cannot make its network namespace", e))?,
            ),
            None => None,
        };
        // In a namespace of its own, only the instance can connect to its Runtime API.
        let peer_check = match (&network, &cgroup.0) {
            (None, Some(c)) => Some(PeerCheck {
                procs: c.procs_paths(),
            }),
            _ => None,
        };
        let (api_listener, network) = match network {
            Some(network) => {
                let (api, rest) = network
                    .serve(ctx)
                    .map_err(|e| internal("cannot serve its network", e))?;
                (Some(api), Some(rest))
            }
            None => (None, None),
        };
        let api = RuntimeApi::start(
            ctx.function_arn.clone(),
            ctx.limits.max_response_body,
            peer_check,
            api_listener,
        )
        .await
        .map_err(|e| internal("cannot listen for its Runtime API", e))?;
        let plan = Plan {
            sandbox: &ctx.sandbox,
            code_dir: &ctx.code_dir,
            runtime_dir: ctx.runtime_dir.as_deref(),
            memory_bytes,
            address_space_limit_ok: ctx.address_space_limit_ok,
            network: network.as_ref().map(ServedNetwork::path),
        };
        let (task_root, runtime_root) = plan.paths();
        let host_tmp = if ctx.sandbox.mount_namespace {
            None
        } else {
            let dir = ctx.instances_dir.join(&id);
            std::fs::create_dir_all(&dir).map_err(|e| internal("cannot create its temp dir", e))?;
            Some(dir)
        };
        let tmp = host_tmp.clone().unwrap_or_else(|| PathBuf::from("/tmp"));

        // Later entries win: Lambda's reserved variables over the function's own.
        let mut env = sandbox::base_env(&tmp);
        env.extend(
            function_env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let version = match ctx.version.load(std::sync::atomic::Ordering::Relaxed) {
            0 => "$LATEST".to_string(),
            number => number.to_string(),
        };
        let lambda = [
            ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
            ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", ctx.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", version.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", ctx.memory_mb.to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", ctx.name)),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name(&version, &id)),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
            ("_HANDLER", ctx.handler.clone().unwrap_or_default()),
        ];
        env.extend(
            lambda
                .into_iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        if let Some(dir) = &runtime_root {
            env.push(("LAMBDA_RUNTIME_DIR".into(), dir.as_os_str().to_owned()));
        }
        env.extend(
            service_env(ctx, network.is_some())
                .into_iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let (program, args) = ctx.command(&task_root, runtime_root.as_deref());
        let spec = ShimSpec {
            program,
            args,
            env: dedup_env(env),
            isolation: plan.isolation(),
        };
        let spec = serde_json::to_vec(&spec)
            .map_err(|e| internal("cannot encode its spec", std::io::Error::other(e)))?;
        let prepared = started.elapsed();
        let mut stdin = shim.stdin;
        let child = shim.child;
        let mut instance = Instance {
            pgid: child
                .id()
                .and_then(|pid| i32::try_from(pid).ok())
                .map(Pid::from_raw),
            id,
            child,
            api,
            pipes,
            cgroup: cgroup.0.take(),
            _network: network,
            host_tmp,
            oom_kills_seen: 0,
            max_response: ctx.limits.max_response_body,
            reusable: true,
        };
        // The spec, then end of file: the shim starts the runtime.
        {
            use tokio::io::AsyncWriteExt;
            let written = async {
                stdin.write_all(&spec).await?;
                stdin.shutdown().await
            };
            if let Err(e) = written.await {
                instance.reusable = false;
                return Err(internal("cannot hand it its spec", e));
            }
            drop(stdin);
        }
        let spawned = started.elapsed();
        match instance.wait_for_init().await {
            Ok(()) => {
                tracing::debug!(
                    function = %ctx.name,
                    instance = %instance.id,
                    "instance ready: prepared in {prepared:?}, spawned at {spawned:?}, initialised at {:?}",
                    started.elapsed()
                );
                let logs = instance.pipes.take();
                Ok((instance, started.elapsed(), logs))
            }
            Err(error) => {
                instance.reusable = false;
                instance.pipes.drain_now();
                Err(StartFailure {
                    error,
                    logs: instance.pipes.take(),
                })
            }
        }
    }

    async fn wait_for_init(&mut self) -> Result<(), InvokeError> {
        let mut init = self.api.init.clone();
        let waited = tokio::select! {
            state = init.wait_for(|s| *s != InitState::Starting) => state.map(|s| s.clone()).ok(),
            status = self.child.wait() => {
                // A runtime that reported an init error and exited: the report wins.
                let state = self.api.init.borrow().clone();
                match state {
                    InitState::Failed(report) => Some(InitState::Failed(report)),
                    _ => return Err(self.exited(status.ok(), None)),
                }
            }
            () = tokio::time::sleep(INIT_TIMEOUT) => None,
            () = self.pipes.pump() => None,
        };
        match waited {
            Some(InitState::Ready) => Ok(()),
            Some(InitState::Failed(report)) => Err(InvokeError::Reported {
                code: ErrorCode::FunctionError,
                report,
            }),
            Some(InitState::Starting) | None => Err(InvokeError::Reported {
                code: ErrorCode::Timeout,
                report: ErrorReport::new(
                    "Sandbox.Timedout",
                    format!(
                        "the runtime did not ask for an event within {}s of starting",
                        INIT_TIMEOUT.as_secs()
                    ),
                ),
            }),
        }
    }

    /// Runs one invocation. The instance may be reused afterwards only if
    /// [`Instance::reusable`] says so.
    pub(crate) async fn invoke(
        &mut self,
        request_id: &str,
        payload: Bytes,
        timeout: Duration,
        delivery: Delivery,
    ) -> (Result<Bytes, InvokeError>, Logs) {
        let deadline = Instant::now() + timeout;
        let deadline_ms = u64::try_from(wall::now_ms().saturating_add(wall::millis(timeout))).unwrap_or(0);
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let pending = Pending {
            id: request_id.to_string(),
            payload,
            deadline_ms,
            delivery,
            reply: reply_tx,
        };
        if self.api.submit.try_send(pending).is_err() {
            self.reusable = false;
            return (
                Err(InvokeError::Internal(
                    "the instance was not ready for an event".to_string(),
                )),
                self.pipes.take(),
            );
        }
        enum End {
            Reply(Option<Reply>),
            Exited(Option<ExitStatus>),
            TimedOut,
        }
        let end = tokio::select! {
            reply = reply_rx => End::Reply(reply.ok()),
            status = self.child.wait() => End::Exited(status.ok()),
            () = tokio::time::sleep_until(deadline.into()) => End::TimedOut,
            () = self.pipes.pump() => End::TimedOut,
        };
        let result = match end {
            End::Reply(Some(Reply::Response(body))) => Ok(body),
            End::Reply(Some(Reply::Error(report))) => Err(InvokeError::Reported {
                code: ErrorCode::FunctionError,
                report,
            }),
            End::Reply(Some(Reply::TooLarge)) => Err(InvokeError::ResponseTooLarge(self.max_response)),
            End::Reply(None) => Err(InvokeError::Reported {
                code: ErrorCode::FunctionError,
                report: ErrorReport::new(
                    "Runtime.NoResponse",
                    format!(
                        "RequestId: {request_id} Error: the runtime asked for the next event without answering this one"
                    ),
                ),
            }),
            End::Exited(status) => Err(self.exited(status, Some(request_id))),
            End::TimedOut => {
                self.reusable = false;
                self.kill();
                Err(InvokeError::Reported {
                    code: ErrorCode::Timeout,
                    report: ErrorReport::new(
                        "Sandbox.Timedout",
                        format!(
                            "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                            timeout.as_secs_f64()
                        ),
                    ),
                })
            }
        };
        self.pipes.drain_now();
        (result, self.pipes.take())
    }

    /// The error for a runtime that exited: out of memory when the cgroup's OOM
    /// killer struck, else Lambda's `Runtime.ExitError`.
    fn exited(&mut self, status: Option<ExitStatus>, request_id: Option<&str>) -> InvokeError {
        use std::os::unix::process::ExitStatusExt;
        self.reusable = false;
        let prefix = request_id
            .map(|id| format!("RequestId: {id} Error: "))
            .unwrap_or_default();
        let oom_kills = self.cgroup.as_ref().map_or(0, InstanceCgroup::oom_kills);
        if oom_kills > self.oom_kills_seen {
            self.oom_kills_seen = oom_kills;
            return InvokeError::Reported {
                code: ErrorCode::OutOfMemory,
                report: ErrorReport::new(
                    "Runtime.OutOfMemory",
                    format!("{prefix}Runtime exited with error: signal: killed (out of memory)"),
                ),
            };
        }
        let how = match status {
            Some(s) if s.code().is_some() => format!("exit status {}", s.code().unwrap_or_default()),
            Some(s) => match s.signal().and_then(|n| Signal::try_from(n).ok()) {
                Some(Signal::SIGKILL) => "signal: killed".to_string(),
                Some(signal) => format!("signal: {}", signal.as_str()),
                None => "an unknown status".to_string(),
            },
            None => "an unknown status".to_string(),
        };
        let (error_type, message) = match (request_id, status.and_then(|s| s.code())) {
            (None, Some(0)) => (
                "Runtime.ExitError",
                "Runtime exited without providing a reason".to_string(),
            ),
            // The shim (or a shell bootstrap) could not exec the runtime: a missing
            // interpreter, a bad `#!` line, a binary for another machine.
            (None, Some(super::shim::EXEC_FAILED)) => (
                "Runtime.InvalidEntrypoint",
                format!("the runtime could not be started ({how}); the function's log says why"),
            ),
            _ => (
                "Runtime.ExitError",
                format!("{prefix}Runtime exited with error: {how}"),
            ),
        };
        InvokeError::Reported {
            code: ErrorCode::FunctionError,
            report: ErrorReport::new(error_type, message),
        }
    }

    /// The most memory the instance has used, when its cgroup says.
    pub(crate) fn peak_memory(&self) -> Option<u64> {
        self.cgroup.as_ref().and_then(InstanceCgroup::peak_memory)
    }

    /// Whether the instance can serve another invocation.
    pub(crate) fn reusable(&mut self) -> bool {
        self.reusable && matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills every process the instance started, at once.
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let _ = self.child.start_kill();
    }

    /// The instance's id (its log stream carries it).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        let cgroup = self.cgroup.take();
        let host_tmp = self.host_tmp.take();
        let cleanup = move || {
            if let Some(cgroup) = cgroup {
                cgroup.kill_all_and_remove();
            }
            if let Some(dir) = host_tmp {
                let _ = std::fs::remove_dir_all(dir);
            }
        };
        super::in_background(cleanup);
    }
}

/// Where the instance reaches Wisp's services (S3, `/v1/…` and Lambda's Invoke) and the outside:
/// inside its own namespace, the forwarded services port and the proxy; otherwise the
/// services listener itself (and the host's network, unfiltered).
fn service_env(ctx: &FunctionContext, own_network: bool) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    let services = if own_network {
        ctx.services_endpoint
            .as_ref()
            .map(|_| format!("http://{}", InstanceNetwork::inside(network::SERVICES_PORT)))
    } else {
        ctx.services_endpoint.as_ref().map(|e| e.url.clone())
    };
    if let Some(url) = services {
        let base = url.trim_end_matches('/').to_string();
        env.push(("WISP_KV_URL", format!("{base}/v1/kv")));
        // Lambda's Invoke (function-to-function calls) is served there too.
        env.push(("AWS_ENDPOINT_URL_LAMBDA", base.clone()));
        env.push(("AWS_ENDPOINT_URL_S3", base));
    }
    if own_network {
        let proxy = format!("http://{}", InstanceNetwork::inside(network::PROXY_PORT));
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            env.push((name, proxy.clone()));
        }
        // The namespace's own ports go direct; any other address, loopback included
        // (the host's, which is not this one), goes through the proxy.
        let direct = format!(
            "localhost,{},{}",
            InstanceNetwork::inside(network::RUNTIME_API_PORT),
            InstanceNetwork::inside(network::SERVICES_PORT)
        );
        for name in ["NO_PROXY", "no_proxy"] {
            env.push((name, direct.clone()));
        }
    }
    env
}

/// An instance's network namespace while it is served: the namespace's file stays
/// open (for the shim to join) and the tasks serving its services port and proxy
/// run until the instance is dropped.
pub(crate) struct ServedNetwork {
    path: PathBuf,
    _namespace: std::os::fd::OwnedFd,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ServedNetwork {
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

impl Drop for ServedNetwork {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl InstanceNetwork {
    /// Starts serving the namespace's services port and proxy; returns the Runtime
    /// API's listener for the API to serve.
    fn serve(self, ctx: &FunctionContext) -> std::io::Result<(std::net::TcpListener, ServedNetwork)> {
        let path = self.path();
        let InstanceNetwork {
            namespace,
            runtime_api,
            services,
            proxy,
        } = self;
        let listen = tokio::net::TcpListener::from_std;
        let mut tasks = Vec::new();
        // With no services listener, connections to the port are refused at once.
        if let Some(endpoint) = &ctx.services_endpoint {
            tasks.push(tokio::spawn(network::forward(listen(services)?, endpoint.addr)));
        }
        tasks.push(tokio::spawn(super::proxy::serve(
            listen(proxy)?,
            ctx.services.outbound_http().clone(),
        )));
        Ok((
            runtime_api,
            ServedNetwork {
                path,
                _namespace: namespace,
                tasks,
            },
        ))
    }
}

/// An instance's cgroup before the instance owns it: removed if the start fails.
struct CgroupGuard(Option<InstanceCgroup>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cgroup) = self.0.take() {
            super::in_background(move || cgroup.kill_all_and_remove());
        }
    }
}

/// The environment with each name once, the last value winning.
fn dedup_env(env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = Vec::with_capacity(env.len());
    for (key, value) in env {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

/// Lambda's log stream name: `YYYY/MM/DD/[VERSION]INSTANCE`.
fn log_stream_name(version: &str, instance: &str) -> String {
    format!("{}/[{version}]{instance}", chrono::Utc::now().format("%Y/%m/%d"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_stream_names_look_like_lambdas() {
        let name = super::log_stream_name("3", "abc");
        assert!(name.ends_with("/[3]abc"), "{name}");
        assert_eq!(name.len(), "2026/11/21/[3]abc".len(), "{name}");
    }
}
