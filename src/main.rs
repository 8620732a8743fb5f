//! The `blogql` binary: command line, logging and the listener. Everything
//! else lives in the library so tests run exactly what ships.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use blogql::auth::HashCost;
use blogql::limits::Limits;
use blogql::{AppState, Config};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// A GraphQL API for a blog; deletes cascade in one transaction.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Print the GraphQL schema (SDL) to stdout; `schema.graphql` is this output.
    PrintSchema,
    /// Fill the store with generated accounts, posts, comments, likes and follows (benchmarks, crash tests).
    Seed(SeedArgs),
    /// Check the store's integrity (no orphans, mirrored references, exact counts); exit 1 on any violation.
    Check(StoreArgs),
}

#[derive(Args, Debug, Clone)]
struct SeedArgs {
    #[command(flatten)]
    store: StoreArgs,
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
    /// HS256 secret for `--tokens-out` (else the data dir's generated one).
    #[arg(long, env = "BLOGQL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Write one line per account: `<token> <user id> <post id>,<post id>,...`.
    #[arg(long)]
    tokens_out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct StoreArgs {
    /// Directory of the embedded store (created if missing).
    #[arg(long, env = "BLOGQL_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// MongoDB connection string; when set, MongoDB (a replica set) is the store instead of the embedded one.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    mongodb_uri: Option<String>,
    /// MongoDB database; defaults to the URI's path, else `blogql`.
    #[arg(long, env = "BLOGQL_MONGODB_DATABASE")]
    mongodb_database: Option<String>,
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<blogql::store::DynStore> {
        let store: blogql::store::DynStore = match &self.mongodb_uri {
            Some(uri) => {
                let store = blogql::store::mongo::MongoStore::connect(uri, self.mongodb_database.as_deref())
                    .await
                    .map_err(|e| anyhow::anyhow!(e.detail()))?;
                tracing::info!(database = %store.database().name(), "using MongoDB");
                std::sync::Arc::new(store)
            }
            None => std::sync::Arc::new(
                blogql::store::embedded::EmbeddedStore::open(&self.data_dir)
                    .map_err(|e| anyhow::anyhow!(e.detail()))?,
            ),
        };
        Ok(store)
    }
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BLOGQL_BIND", default_value = "127.0.0.1:8000")]
    bind: String,
    #[command(flatten)]
    store: StoreArgs,
    /// HS256 secret for tokens (16+ bytes); generated once into the data dir when absent.
    #[arg(long, env = "BLOGQL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "BLOGQL_TOKEN_TTL_SECS", default_value_t = 24 * 60 * 60)]
    token_ttl_secs: u64,
    /// argon2id memory cost in KiB.
    #[arg(long, env = "BLOGQL_ARGON2_MEMORY_KIB", default_value_t = HashCost::default().memory_kib)]
    argon2_memory_kib: u32,
    /// Deepest selection nesting a query may have.
    #[arg(long, env = "BLOGQL_MAX_QUERY_DEPTH", default_value_t = Limits::default().max_depth)]
    max_query_depth: usize,
    /// Largest query complexity (connection fields cost `first` times their selection).
    #[arg(long, env = "BLOGQL_MAX_QUERY_COMPLEXITY", default_value_t = Limits::default().max_complexity)]
    max_query_complexity: usize,
    /// Most fields one query may select, counting aliases and every fragment use.
    #[arg(long, env = "BLOGQL_MAX_QUERY_FIELDS", default_value_t = Limits::default().max_fields)]
    max_query_fields: usize,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, env = "BLOGQL_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Longest a request may run, in seconds; slower ones get 408.
    #[arg(long, env = "BLOGQL_REQUEST_TIMEOUT_SECS", default_value_t = Limits::default().request_timeout.as_secs())]
    request_timeout_secs: u64,
    /// Longest a client may take to send request headers or body, in seconds.
    #[arg(long, env = "BLOGQL_READ_TIMEOUT_SECS", default_value_t = Limits::default().read_timeout.as_secs())]
    read_timeout_secs: u64,
    /// Log-in attempts allowed per email per minute.
    #[arg(long, env = "BLOGQL_LOGINS_PER_EMAIL_PER_MINUTE", default_value_t = Limits::default().logins_per_email_per_minute)]
    logins_per_email_per_minute: u32,
    /// Log-in attempts allowed per client IP per minute.
    #[arg(long, env = "BLOGQL_LOGINS_PER_IP_PER_MINUTE", default_value_t = Limits::default().logins_per_ip_per_minute)]
    logins_per_ip_per_minute: u32,
    /// Comma-separated origins allowed to call the API from browsers (none by default).
    #[arg(long, env = "BLOGQL_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// How long, in milliseconds, a DataLoader collects keys before sending its batch.
    #[arg(long, env = "BLOGQL_BATCH_WINDOW_MS", default_value_t = 1)]
    batch_window_ms: u64,
    /// argon2id iterations.
    #[arg(long, env = "BLOGQL_ARGON2_ITERATIONS", default_value_t = HashCost::default().iterations)]
    argon2_iterations: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::PrintSchema) => {
            print!("{}", blogql::graphql::sdl());
            Ok(())
        }
        Some(Command::Serve(args)) => run(args).await,
        Some(Command::Check(args)) => check(&args).await,
        Some(Command::Seed(args)) => seed(args).await,
        None => run(cli.serve).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("blogql: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.store.mongodb_uri.is_some() && args.jwt_secret.is_none() {
        anyhow::bail!(
            "with MONGODB_URI set, BLOGQL_JWT_SECRET (or --jwt-secret) is required: every server behind the database must sign with the same secret"
        );
    }
    let store = args.store.open().await?;
    let config = Config {
        data_dir: args.store.data_dir.clone(),
        jwt_secret: args.jwt_secret,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        hash_cost: HashCost { memory_kib: args.argon2_memory_kib, iterations: args.argon2_iterations },
        limits: Limits {
            max_depth: args.max_query_depth,
            max_complexity: args.max_query_complexity,
            max_fields: args.max_query_fields,
            max_body_bytes: args.max_body_bytes,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            read_timeout: Duration::from_secs(args.read_timeout_secs),
            logins_per_email_per_minute: args.logins_per_email_per_minute,
            logins_per_ip_per_minute: args.logins_per_ip_per_minute,
            cors_origins: args.cors_origins,
            batch_window: Duration::from_millis(args.batch_window_ms),
        },
    };
    let state = AppState::new(store, &config).map_err(|e| anyhow::anyhow!(e.detail()))?;
    let listener = tokio::net::TcpListener::bind(&args.bind).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "blogql listening; GraphiQL at http://{addr}/");
    blogql::serve(listener, state, shutdown_signal()).await.map_err(|e| anyhow::anyhow!(e.detail()))?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Seeds the store and optionally writes tokens for the load script.
async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let config = Config {
        data_dir: args.store.data_dir.clone(),
        jwt_secret: args.jwt_secret.clone(),
        token_ttl: Duration::from_secs(7 * 24 * 60 * 60),
        hash_cost: HashCost::default(),
        limits: Limits::default(),
    };
    let state = AppState::new(store, &config).map_err(|e| anyhow::anyhow!(e.detail()))?;
    let plan = blogql::seed::SeedPlan {
        users: args.users,
        posts_per_user: args.posts_per_user,
        comments_per_post: args.comments_per_post,
        likes_per_post: args.likes_per_post,
        follows_per_user: args.follows_per_user,
        password_hash: state
            .auth
            .hash_password(args.password.clone())
            .await
            .map_err(|e| anyhow::anyhow!(e.detail()))?,
    };
    let started = std::time::Instant::now();
    let seeded = blogql::seed::seed(state.store.as_ref(), &plan).await.map_err(|e| anyhow::anyhow!(e.detail()))?;
    println!(
        "seeded {} users with {} posts each in {:.1?}",
        seeded.users.len(),
        plan.posts_per_user,
        started.elapsed()
    );
    if let Some(path) = args.tokens_out {
        let mut out = String::new();
        for (user, posts) in &seeded.users {
            let token = state.auth.issue(*user).map_err(|e| anyhow::anyhow!(e.detail()))?;
            let posts: Vec<String> = posts.iter().map(|p| p.to_hex()).collect();
            out.push_str(&format!("{token} {} {}\n", user.to_hex(), posts.join(",")));
        }
        std::fs::write(&path, out)?;
        println!("wrote {} tokens to {}", seeded.users.len(), path.display());
    }
    Ok(())
}

/// Runs the integrity checker and prints one line per violation.
async fn check(args: &StoreArgs) -> anyhow::Result<()> {
    let store = args.open().await?;
    let snapshot = store.snapshot().await.map_err(|e| anyhow::anyhow!(e.detail()))?;
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
    if problems.is_empty() { Ok(()) } else { anyhow::bail!("integrity check failed") }
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
