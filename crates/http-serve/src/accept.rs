//! Where connections come from, and how a failed accept is retried.

use std::{future::Future, io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};

/// The first pause after a failed accept, doubled on each failure in a row up to
/// [`ACCEPT_BACKOFF_MAX`]: out of file descriptors, accepting again at once only spins.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where connections come from: a [`TcpListener`], or a test's scripted one.
pub trait Accept: Send {
    type Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Conn, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Conn = TcpStream;
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self).await
    }
}

/// The pause after failed accepts, and what has been logged of them: one line per
/// step of the backoff, not one per error (an fd-exhausted server fails thousands of
/// accepts a second).
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    /// The pause after the next failure; `None` after a success.
    next: Option<Duration>,
    /// The pause last logged: at the cap, the step no longer changes and is not logged.
    logged: Option<Duration>,
    failures: u64,
}

impl AcceptBackoff {
    /// Records a failure and returns how long to pause before accepting again.
    pub(crate) fn failed(&mut self, server: &str, error: &io::Error) -> Duration {
        self.failures += 1;
        let pause = self.next.unwrap_or(ACCEPT_BACKOFF_MIN);
        if self.logged != Some(pause) {
            tracing::warn!(server, %error, failures = self.failures, ?pause, "accept failed; pausing before the next");
            self.logged = Some(pause);
        }
        self.next = Some((pause * 2).min(ACCEPT_BACKOFF_MAX));
        pause
    }

    pub(crate) fn succeeded(&mut self, server: &str) {
        if self.failures > 0 {
            tracing::info!(server, failures = self.failures, "accepting connections again");
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_to_the_cap_and_resets_on_success() {
        let mut backoff = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..10).map(|_| backoff.failed("t", &emfile)).collect();
        assert_eq!(pauses[0], ACCEPT_BACKOFF_MIN);
        assert_eq!(pauses[1], ACCEPT_BACKOFF_MIN * 2);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(pauses[9], ACCEPT_BACKOFF_MAX);
        backoff.succeeded("t");
        assert_eq!(backoff.failed("t", &emfile), ACCEPT_BACKOFF_MIN);
    }
}
