//! The `isoexec` binary: parses configuration, sets up logging and V8, and
//! serves until SIGINT or SIGTERM — or runs or lints files (`isoexec run`,
//! `isoexec lint`) without a server.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use isoexec::config::{Config, Flags, LogFormat};
use isoexec::log_writer;

#[derive(Parser)]
#[command(
    name = "isoexec",
    version,
    about = "Runs TypeScript and JavaScript in pooled V8 isolates, over HTTP or from the command line",
    long_about = "Runs TypeScript and JavaScript in pooled V8 isolates.\n\n\
        `isoexec` (or `isoexec serve`) starts the HTTP server; `isoexec run FILE` and \
        `isoexec lint FILE...` use the same engine without one. Every setting is a flag \
        and an environment variable (the flag wins); each is listed below with its default."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (the default).
    Serve,
    /// Run a file: call an exported function (--fn) or run it as a program.
    Run {
        /// The TypeScript or JavaScript file.
        file: std::path::PathBuf,
        /// Call this exported function and print its result as JSON.
        #[arg(long = "fn", value_name = "NAME")]
        fn_name: Option<String>,
        /// The function's argument, as JSON [default: null].
        #[arg(long, value_name = "JSON", requires = "fn_name")]
        payload: Option<String>,
        /// isolate, none, frozen or process [default: isolate].
        #[arg(long, value_name = "MODE")]
        isolation: Option<String>,
        /// Wall-clock limit in ms [default: DEFAULT_TIMEOUT].
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
        /// Run FILE as a Node program whatever its extension (CommonJS unless
        /// it has import/export).
        #[arg(long, conflicts_with = "fn_name")]
        node: bool,
    },
    /// Lint files with deno_lint's recommended rules; exit 1 when any finding.
    Lint {
        /// The files to lint.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Print the `deno lint --json` shape.
        #[arg(long)]
        json: bool,
    },
    /// Run one job for a server (`"isolation": "process"`); not for direct use.
    #[command(hide = true)]
    Worker,
    /// Parse, transpile and lint for a server; not for direct use.
    #[command(hide = true, name = "compile-helper")]
    CompileHelper,
}

/// The settings that shape how `isoexec run` runs a program (limits,
/// permissions, where imports come from); the rest concern the server and
/// are accepted but left out of `run --help`. `lint --help` lists only the
/// logging ones.
const RUN_FLAGS: &[&str] = &[
    "log_level",
    "log_format",
    "tools_dir",
    "vendor_dir",
    "import_map",
    "allow_read",
    "allow_write",
    "allow_net",
    "allow_env",
    "default_timeout",
    "max_timeout",
    "cpu_limit_ms",
    "memory_limit_mb",
    "max_result_bytes",
    "max_log_entries",
    "max_log_bytes",
    "max_json_depth",
    "max_write_bytes",
    "default_isolation",
];
const LINT_FLAGS: &[&str] = &["log_level", "log_format"];

/// The command line, with each subcommand's help listing only the settings
/// that apply to it. Every setting stays accepted everywhere (`global`), so
/// `isoexec run --port 1 f.ts` is not an error, merely a no-op.
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    // Builds the tree, which copies the global flags into each subcommand.
    cmd.build();
    let show_only = |keep: &'static [&'static str]| {
        move |sub: clap::Command| {
            let globals: Vec<String> = Flags::augment_args(clap::Command::new("f"))
                .get_arguments()
                .map(|a| a.get_id().to_string())
                .collect();
            sub.mut_args(|a| {
                let id = a.get_id().as_str();
                if globals.iter().any(|g| g == id) && !keep.contains(&id) {
                    a.hide(true)
                } else {
                    a
                }
            })
        }
    };
    cmd.mut_subcommand("run", show_only(RUN_FLAGS))
        .mut_subcommand("lint", show_only(LINT_FLAGS))
}

/// What to do once the configuration is read.
enum Action {
    Serve,
    Run(isoexec::cli::RunArgs),
    Lint(Vec<std::path::PathBuf>, bool),
}

/// Rust's allocations (requests, replies, reports; not V8's heap, which has
/// its own) go through mimalloc in the server: a request makes a few dozen
/// small ones, and glibc's allocator spent about a tenth of a call's
/// instructions on them. A `"process"` worker (this binary, started with
/// `ISOEXEC_WORKER_OPTIONS` set, for one call) keeps the system allocator:
/// setting mimalloc up in each new process cost its start about 0.7 ms of
/// CPU. The choice is made at the process's first allocation, from the
/// environment it was started with, and never changes.
#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

struct Allocator;

/// The alignment every block of mimalloc's has (its sizes are whole
/// words): a layout that asks no more is served by its plain entry points.
/// Its aligned ones take a slower path for any block over 1 KiB, and
/// over-allocate for sizes that are not a power of two.
const MI_WORD: usize = std::mem::size_of::<usize>();

/// 0: not chosen yet; 1: the system's; 2: mimalloc.
static CHOSEN: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl Allocator {
    #[inline]
    fn mimalloc(&self) -> bool {
        use std::sync::atomic::Ordering;
        match CHOSEN.load(Ordering::Relaxed) {
            2 => true,
            1 => false,
            _ => {
                // SAFETY: getenv reads the environment without allocating,
                // and nothing sets variables while the first allocation is
                // made (before `main`).
                let worker = !unsafe { libc::getenv(c"ISOEXEC_WORKER_OPTIONS".as_ptr()) }.is_null();
                CHOSEN.store(if worker { 1 } else { 2 }, Ordering::Relaxed);
                !worker
            }
        }
    }
}

// SAFETY: every block is freed (and resized) by the allocator that made it:
// the choice is made before the first allocation and never changes.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if self.mimalloc() {
                if layout.align() <= MI_WORD {
                    libmimalloc_sys::mi_malloc(layout.size()).cast()
                } else {
                    mimalloc::MiMalloc.alloc(layout)
                }
            } else {
                std::alloc::System.alloc(layout)
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if self.mimalloc() {
                if layout.align() <= MI_WORD {
                    libmimalloc_sys::mi_zalloc(layout.size()).cast()
                } else {
                    mimalloc::MiMalloc.alloc_zeroed(layout)
                }
            } else {
                std::alloc::System.alloc_zeroed(layout)
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe {
            if self.mimalloc() {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            } else {
                std::alloc::System.dealloc(ptr, layout)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if self.mimalloc() {
                if layout.align() <= MI_WORD {
                    libmimalloc_sys::mi_realloc(ptr.cast(), size).cast()
                } else {
                    mimalloc::MiMalloc.realloc(ptr, layout, size)
                }
            } else {
                std::alloc::System.realloc(ptr, layout, size)
            }
        }
    }
}

fn main() -> ExitCode {
    if let Some(code) = isoexec::init::as_pid1() {
        return code;
    }
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let action = match cli.command {
        None | Some(Command::Serve) => Action::Serve,
        Some(Command::Run {
            file,
            fn_name,
            payload,
            isolation,
            timeout,
            node,
        }) => {
            let isolation = match isolation.as_deref() {
                // DEFAULT_ISOLATION, once the configuration is read.
                None => None,
                Some(m) => match isoexec::engine::Isolation::parse(m) {
                    Some(i) => Some(i),
                    None => {
                        eprintln!(
                            "isoexec: --isolation must be isolate, none, frozen or process, not '{m}'"
                        );
                        return ExitCode::from(2);
                    }
                },
            };
            let args = isoexec::cli::RunArgs {
                file,
                fn_name,
                payload,
                isolation,
                timeout: timeout.map(std::time::Duration::from_millis),
                node,
            };
            Action::Run(args)
        }
        Some(Command::Lint { files, json }) => Action::Lint(files, json),
        Some(Command::Worker) => return isoexec::engine::serve_worker(),
        Some(Command::CompileHelper) => return isoexec::engine::serve_compile_helper(),
    };
    let config = match Config::from_env(&cli.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("isoexec: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let logs = init_logging(&config);
    isoexec::engine::init_v8();
    match action {
        // What the server made of other systems' settings, once.
        Action::Serve => {
            for line in &config.notices.aliases {
                tracing::info!("{line}");
            }
            for line in &config.notices.ignored {
                tracing::warn!("{line}");
            }
        }
        Action::Run(args) => return isoexec::cli::run(config, args),
        Action::Lint(files, json) => return isoexec::cli::lint(config, files, json),
    }

    // This runtime accepts connections and runs background chores; the
    // connections themselves are served on HTTP_THREADS threads of their
    // own (see `http::threads`).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("isoexec-main")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isoexec: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let listener = match tokio::net::TcpListener::bind((config.host, config.port)).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot listen on {}:{}: the address is already in use; \
                         choose another port with PORT (or --port; 0 picks a free one), \
                         or another address with HOST",
                        config.host, config.port
                    ),
                ));
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot listen on {}:{}: {e} (HOST, PORT)",
                        config.host, config.port
                    ),
                ));
            }
        };
        let addr = listener.local_addr()?;
        let mut config = config;
        if config.advertise_url.is_none() {
            // Where the other replicas of a shared store reach this one:
            // the listening address, or, listening on every address, the
            // one this host's outbound route uses (a pod's or container's
            // IP; a UDP "connect" sends nothing), else the host name.
            let host = if addr.ip().is_unspecified() {
                std::net::UdpSocket::bind("0.0.0.0:0")
                    .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
                    .and_then(|s| s.local_addr())
                    .map(|a| a.ip())
                    .ok()
                    .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
                    .map(|ip| ip.to_string())
                    .unwrap_or_else(|| {
                        std::fs::read_to_string("/proc/sys/kernel/hostname")
                            .map(|h| h.trim().to_string())
                            .unwrap_or_else(|_| "localhost".into())
                    })
            } else {
                addr.ip().to_string()
            };
            config.advertise_url = Some(format!("http://{host}:{}", addr.port()));
        }
        let pool = config.pool_size;
        // The store, the workspace and the engine are opened first: the
        // listening line means the server can answer.
        let app = std::sync::Arc::new(isoexec::App::start(config)?);
        app.start_background()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "isoexec listening on http://{addr}")?;
            out.flush()?;
        }
        tracing::info!(%addr, pool, "listening");
        isoexec::serve(listener, app, shutdown_signal()).await
    });
    // Every log line is out before the last word.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isoexec: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the log subscriber; the lines go through a buffer that the
/// returned guard drains when dropped (see `log_writer`).
fn init_logging(config: &Config) -> log_writer::Drain {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, drain) = log_writer::start();
    // Colour only for a person at a terminal: never in files or collectors.
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    drain
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received");
}
