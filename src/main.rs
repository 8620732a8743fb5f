//! The `blogql` binary: command line, logging and the listener. Everything
//! else lives in the library so tests run exactly what ships.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use blogql::AppState;
use blogql::settings::{AuthSettings, Settings, StoreSettings};
use clap::{Args, Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the request path allocates many small,
/// short-lived objects (GraphQL values, decoded documents), where glibc spent
/// about a quarter of the server's CPU, and glibc keeps large freed buffers
/// (argon2's 19 MiB) resident where mimalloc returns them to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A GraphQL API for a blog; deletes cascade in one transaction.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Settings,
    #[command(flatten)]
    telemetry: blogql::settings::TelemetrySettings,
}

// Parsed once at start-up: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API (the default when no subcommand is given).
    Serve(Settings),
    /// Print the GraphQL schema (SDL) to stdout; `schema.graphql` is this output.
    PrintSchema {
        /// Print the Apollo Federation v2 subgraph SDL instead (`subgraph.graphql`).
        #[arg(long)]
        federation: bool,
    },
    /// Fill the store with generated accounts, posts, comments, likes and follows (benchmarks, crash tests).
    Seed(SeedArgs),
    /// Check the store's integrity (no orphans, mirrored references, exact counts); exit 1 on any violation.
    Check(CheckArgs),
    /// Ask a running server's `/healthz` and exit 0 if it answers 200 within
    /// two seconds (the container image's HEALTHCHECK; it has no curl).
    Healthcheck {
        /// The server's address, as given to `serve --bind`; an unspecified
        /// host (0.0.0.0 or ::) means this machine.
        #[arg(long, env = "BLOGQL_BIND", default_value = "127.0.0.1:8000")]
        bind: String,
    },
}

#[derive(Args, Debug, Clone)]
struct CheckArgs {
    #[command(flatten)]
    store: StoreSettings,
    /// List what a repair would change: orphan posts and comments, dangling or
    /// one-sided ids in `posts`, `likedBy`, `followers`/`following`, wrong `commentCount`s.
    #[arg(long)]
    repair: bool,
    /// With `--repair`: make those changes, in transactions of at most
    /// `--cascade-budget-docs` documents, then check again.
    #[arg(long, requires = "repair")]
    apply: bool,
}

#[derive(Args, Debug, Clone)]
struct SeedArgs {
    #[command(flatten)]
    store: StoreSettings,
    #[command(flatten)]
    auth: AuthSettings,
    /// Accounts to create.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Posts per account.
    #[arg(long, default_value_t = 10)]
    posts_per_user: usize,
    /// Comments on each post, by other accounts.
    #[arg(long, default_value_t = 2)]
    comments_per_post: usize,
    /// Likes on each post, by other accounts.
    #[arg(long, default_value_t = 2)]
    likes_per_post: usize,
    /// Accounts each account follows.
    #[arg(long, default_value_t = 5)]
    follows_per_user: usize,
    /// Password of every seeded account.
    #[arg(long, default_value = "password123")]
    password: String,
    /// Write one line per account: `<token> <user id> <post id>,<post id>,...`.
    #[arg(long)]
    tokens_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _flush_logs_at_exit = match blogql::telemetry::init(&cli.telemetry) {
        Ok(guard) => guard,
        Err(why) => {
            eprintln!("blogql: {why}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::PrintSchema { federation }) => {
            print!("{}", if federation { blogql::graphql::subgraph_sdl() } else { blogql::graphql::sdl() });
            Ok(())
        }
        Some(Command::Serve(settings)) => serve(settings).await,
        Some(Command::Check(args)) => check(&args).await,
        Some(Command::Seed(args)) => seed(args).await,
        Some(Command::Healthcheck { bind }) => healthcheck(&bind).await,
        None => serve(cli.serve).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("blogql: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(bind: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr: std::net::SocketAddr = bind.parse().with_context(|| format!("{bind} is not an address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(std::time::Duration::from_secs(2), probe)
        .await
        .context("no answer within 2 s")?
        .with_context(|| format!("asking http://{addr}/healthz"))?;
    anyhow::ensure!(head.starts_with(b"HTTP/1.1 200"), "/healthz answered {}", String::from_utf8_lossy(&head));
    println!("ok");
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    if settings.store.mongodb_uri.is_some() && settings.auth.jwt_secret.is_none() {
        anyhow::bail!(
            "with MONGODB_URI set, BLOGQL_JWT_SECRET (or --jwt-secret) is required: every server behind the database must sign with the same secret"
        );
    }
    let store = blogql::store::open(&settings.store).await.context("opening the store")?;
    let listener = tokio::net::TcpListener::bind(&settings.http.bind)
        .await
        .with_context(|| format!("listening on {}", settings.http.bind))?;
    let addr = listener.local_addr()?;
    let data_dir = settings.store.data_dir.clone();
    let state = AppState::new(store, settings).context("preparing the server")?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "blogql listening; GraphiQL at http://{addr}/");
    blogql::serve(listener, state, shutdown_signal()).await.context("serving")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Seeds the store and optionally writes tokens for the load script.
async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let store = blogql::store::open(&args.store).await.context("opening the store")?;
    let auth = blogql::auth::Auth::from_settings(&args.auth, &args.store.data_dir).context("preparing auth")?;
    let password = blogql::domain::Password::parse(&args.password).context("--password")?;
    let plan = blogql::seed::SeedPlan {
        users: args.users,
        posts_per_user: args.posts_per_user,
        comments_per_post: args.comments_per_post,
        likes_per_post: args.likes_per_post,
        follows_per_user: args.follows_per_user,
        password_hash: auth.hash_password(password).await.context("hashing the seed password")?,
    };
    let started = std::time::Instant::now();
    let seeded = blogql::seed::seed(&store, &plan).await.context("seeding")?;
    println!(
        "seeded {} users with {} posts each in {:.1?}",
        seeded.users.len(),
        plan.posts_per_user,
        started.elapsed()
    );
    if let Some(path) = args.tokens_out {
        let mut out = String::new();
        for (user, posts) in &seeded.users {
            // A seeded account is new: its sessions are at version 0.
            let token = auth.issue(*user, 0).context("issuing a token")?;
            let posts: Vec<String> = posts.iter().map(|p| p.to_hex()).collect();
            writeln!(out, "{token} {} {}", user.to_hex(), posts.join(","))?;
        }
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {} tokens to {}", seeded.users.len(), path.display());
    }
    Ok(())
}

/// Runs the integrity checker and prints one line per violation.
async fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let store = blogql::store::open(&args.store).await.context("opening the store")?;
    let snapshot = store.snapshot().await.context("reading the store")?;
    let problems = blogql::check::violations(&snapshot);
    println!(
        "checked {} users, {} posts, {} comments: {} violation(s)",
        snapshot.users.len(),
        snapshot.posts.len(),
        snapshot.comments.len(),
        problems.len()
    );
    for problem in &problems {
        println!("  {problem}");
    }
    if !args.repair {
        return if problems.is_empty() { Ok(()) } else { anyhow::bail!("integrity check failed") };
    }
    let fixes = blogql::repair::plan(&snapshot);
    println!("repair: {} document(s) to change", fixes.len());
    for fix in &fixes {
        println!("  {fix}");
    }
    if !args.apply {
        if !fixes.is_empty() {
            println!("nothing changed; run again with --apply to make these changes");
        }
        return if problems.is_empty() { Ok(()) } else { anyhow::bail!("integrity check failed") };
    }
    let budget = args.store.cascade_budget_docs;
    let changed = blogql::repair::apply(&store, &fixes, budget).await.context("repairing")?;
    println!("repair: changed {changed} document(s) in transactions of at most {budget}");
    let after = blogql::check::violations(&store.snapshot().await.context("reading the store again")?);
    println!("re-checked: {} violation(s)", after.len());
    for problem in &after {
        println!("  {problem}");
    }
    if after.is_empty() { Ok(()) } else { anyhow::bail!("violations remain after the repair") }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
