//! The exporter: one background task that takes finished spans from the
//! layer's queue, batches them (up to [`MAX_BATCH`] spans, or what arrived
//! within [`BATCH_WAIT`] of the first), and POSTs each batch to the
//! collector as OTLP/HTTP protobuf. A failed POST is logged (at most once a
//! minute) and its batch dropped: telemetry never holds up requests.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::layer::OtlpLayer;
use super::{FinishedSpan, OtlpConfig, proto};

/// Most spans in one POST.
pub const MAX_BATCH: usize = 512;
/// Longest a span waits for its batch to fill.
pub const BATCH_WAIT: Duration = Duration::from_millis(200);
/// Spans queued for the exporter; past it a span is dropped and counted.
pub const QUEUE: usize = 8_192;
/// Longest one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The layer for the global subscriber, with its exporter task started.
pub fn start(config: OtlpConfig) -> OtlpLayer {
    let (queue, spans) = mpsc::channel(QUEUE);
    // One subscriber per process, so one sampler: a second start (which
    // `try_init` would refuse anyway) keeps the first.
    let _ = super::SAMPLER.set(config.sampler);
    tokio::spawn(run(config.clone(), spans));
    OtlpLayer { queue }
}

async fn run(config: OtlpConfig, mut spans: mpsc::Receiver<FinishedSpan>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_warning: Option<Instant> = None;
    loop {
        let Some(first) = spans.recv().await else { return };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, spans.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let body = proto::export_request(&config.service_name, &batch);
        let count = batch.len();
        batch.clear();
        if let Err(err) = post(&config.traces_url, &body).await
            && last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
        {
            last_warning = Some(Instant::now());
            tracing::warn!(error = %err, spans = count, url = %config.traces_url, "exporting spans failed; dropped them");
        }
    }
}

/// POSTs `body` to an `http://host:port/path` URL and checks for a 2xx answer.
async fn post(url: &str, body: &[u8]) -> std::io::Result<()> {
    let rest = url.strip_prefix("http://").ok_or_else(|| std::io::Error::other("not an http:// URL"))?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let address = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(POST_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the collector did not answer"))??;
    let status = answer.get(9..12).map(String::from_utf8_lossy).unwrap_or_default();
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("the collector answered {status}")))
    }
}
