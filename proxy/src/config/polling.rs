//! Following a config kept in local files: poll a cheap fingerprint, reload when it changes.
//!
//! Polling rather than inotify: it sees Kubernetes' `..data` symlink swaps of mounted volumes
//! and edits on any filesystem alike, and costs a few `stat`s or reads per interval.

use std::time::Duration;

use api::config::Rendered;

use super::Publisher;

/// A config source made of local files.
pub trait LocalSource: Clone + Send + Sync + 'static {
    /// How the source is named in logs.
    fn origin(&self) -> String;
    /// How often [`LocalSource::fingerprint`] is polled.
    fn interval(&self) -> Duration;
    /// A value that changes whenever the config may have changed.
    fn fingerprint(&self) -> std::io::Result<[u8; 32]>;
    /// Reads the config; the error lists every problem found.
    fn load(&self) -> Result<Rendered, String>;
}

/// Publishes `source` and then every change of it, forever.
pub async fn follow<S: LocalSource>(source: S, publisher: Publisher) {
    let (_, seen) = load(&source, &publisher).await;
    watch(source, publisher, seen).await;
}

/// Publishes `source`, then follows its changes in a background task; true if the first load
/// is served.
pub async fn start<S: LocalSource>(source: S, publisher: Publisher) -> bool {
    let (served, seen) = load(&source, &publisher).await;
    tokio::spawn(watch(source, publisher, seen));
    served
}

/// Takes the fingerprint, then loads and publishes: a change in between is seen by the next poll.
async fn load<S: LocalSource>(source: &S, publisher: &Publisher) -> (bool, Option<[u8; 32]>) {
    let publisher = publisher.clone();
    let loaded = blocking(source, move |s| {
        let seen = s.fingerprint().ok();
        (publisher.apply(&s.origin(), s.load()), seen)
    })
    .await;
    loaded.unwrap_or_else(|| {
        tracing::error!(source = source.origin(), "config load task failed");
        (false, None)
    })
}

/// Polls the fingerprint and reloads whenever it differs from `seen`.
async fn watch<S: LocalSource>(source: S, publisher: Publisher, mut seen: Option<[u8; 32]>) {
    loop {
        tokio::time::sleep(source.interval()).await;
        let Some(Ok(now)) = blocking(&source, |s| s.fingerprint()).await else { continue };
        if seen == Some(now) {
            continue;
        }
        let (_, fingerprint) = load(&source, &publisher).await;
        seen = fingerprint;
    }
}

/// Runs `f` on the blocking pool; `None` if it panicked.
async fn blocking<S: LocalSource, T: Send + 'static>(
    source: &S,
    f: impl FnOnce(&S) -> T + Send + 'static,
) -> Option<T> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || f(&source)).await.ok()
}
