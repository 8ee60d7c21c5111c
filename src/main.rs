//! `wisp`: the serverless platform in one binary. `wisp serve` runs a node; the other
//! subcommands are clients of its control API (`--server`, `WISP_SERVER`).

mod client;
mod commands;
mod exit;
mod node;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// jemalloc, not glibc's malloc: a function-to-function call through `wasi:http` costs
/// ~20 % less server CPU with it (wasmtime's per-instance allocations and the request's
/// bodies and futures are many mid-sized blocks, which glibc takes through its slow path
/// and consolidates), for ~10 MB more resident memory. See docs/performance.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Wisp runs WebAssembly functions on demand: behind HTTP routes or invoked directly.
#[derive(Parser)]
#[command(name = "wisp", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Init(commands::init::InitArgs),
    Serve(commands::serve::ServeArgs),
    Up(commands::up::UpArgs),
    Deploy(commands::deploy::DeployArgs),
    Plan(commands::deploy::PlanArgs),
    Invoke(commands::invoke::InvokeArgs),
    Ls(commands::ls::LsArgs),
    Rm(commands::rm::RmArgs),
    Versions(commands::versions::VersionsArgs),
    Alias(commands::versions::AliasArgs),
    Rollback(commands::versions::RollbackArgs),
    /// Disable a function: it runs nothing (calls are refused, async events and queue
    /// messages wait, schedules skip) until enabled.
    Disable(commands::versions::SwitchArgs),
    /// Enable a disabled function: what waited runs at once.
    Enable(commands::versions::SwitchArgs),
    Logs(commands::logs::LogsArgs),
    Invocations(commands::invocations::InvocationsArgs),
    Dlq(commands::dlq::DlqArgs),
    Queue(commands::queue::QueueArgs),
    Topic(commands::topic::TopicArgs),
    Breakers(commands::breakers::BreakersArgs),
    Alarms(commands::alarms::AlarmsArgs),
    Trace(commands::trace::TraceArgs),
    Bucket(commands::bucket::BucketArgs),
    Object(commands::object::ObjectArgs),
    Kv(commands::kv::KvArgs),
    Secret(commands::secret::SecretArgs),
    Keys(commands::keys::KeysArgs),
    Ns(commands::ns::NsArgs),
    Audit(commands::audit::AuditArgs),
    Usage(commands::usage::UsageArgs),
    Cluster(commands::cluster::ClusterArgs),
}

impl Command {
    async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Init(args) => commands::init::run(args),
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Up(args) => commands::up::run(args).await,
            Command::Deploy(args) => commands::deploy::run(args).await,
            Command::Plan(args) => commands::deploy::plan(args).await,
            Command::Invoke(args) => commands::invoke::run(args).await,
            Command::Ls(args) => commands::ls::run(args).await,
            Command::Rm(args) => commands::rm::run(args).await,
            Command::Versions(args) => commands::versions::versions(args).await,
            Command::Alias(args) => commands::versions::alias(args).await,
            Command::Rollback(args) => commands::versions::rollback(args).await,
            Command::Disable(args) => commands::versions::switch(args, true).await,
            Command::Enable(args) => commands::versions::switch(args, false).await,
            Command::Logs(args) => commands::logs::run(args).await,
            Command::Invocations(args) => commands::invocations::run(args).await,
            Command::Dlq(args) => commands::dlq::run(args).await,
            Command::Queue(args) => commands::queue::run(args).await,
            Command::Topic(args) => commands::topic::run(args).await,
            Command::Breakers(args) => commands::breakers::run(args).await,
            Command::Alarms(args) => commands::alarms::run(args).await,
            Command::Trace(args) => commands::trace::run(args).await,
            Command::Bucket(args) => commands::bucket::run(args).await,
            Command::Object(args) => commands::object::run(args).await,
            Command::Kv(args) => commands::kv::run(args).await,
            Command::Secret(args) => commands::secret::run(args).await,
            Command::Keys(args) => commands::keys::run(args).await,
            Command::Ns(args) => commands::ns::run(args).await,
            Command::Audit(args) => commands::audit::run(args).await,
            Command::Usage(args) => commands::usage::run(args).await,
            Command::Cluster(args) => commands::cluster::run(args).await,
        }
    }
}

/// Starts jemalloc's background threads, which return freed memory to the system while
/// the server is idle (otherwise only allocations do, so a server that went quiet would
/// keep what its last burst freed). For the long-running server only: a CLI command ends
/// too soon to need them, and an instance shim must not start a thread.
fn return_freed_memory_in_the_background() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!(
            "warning: cannot start the allocator's background threads ({e}); freed memory is returned to the system only as the server allocates"
        );
    }
}

fn main() -> ExitCode {
    // A process function's instance starts as this binary in its shim role: it
    // sandboxes itself and becomes the function's runtime (never returns).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == wisp_runtime::process::SHIM_ARG)
    {
        wisp_runtime::process::shim::main();
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_) | Command::Up(_)) {
        return_freed_memory_in_the_background();
    }
    // One crypto provider for the HTTP client's TLS (https --server URLs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::Exit::Failure.into();
        }
    };
    match runtime.block_on(cli.command.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err),
    }
}
