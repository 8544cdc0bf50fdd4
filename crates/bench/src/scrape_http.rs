//! One HTTP/1.1 GET over a fresh loopback connection, as a Prometheus scrape without
//! keep-alive: the server's whole path (accept, parse, gather, encode, write) is timed.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound on one request: a scrape slower than this is a failed benchmark, not a figure.
const TIMEOUT: Duration = Duration::from_secs(30);

/// `GET path`; returns the body of a 200.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::with_capacity(1 << 16);
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("GET {path}: no answer within {TIMEOUT:?}"))?
        .with_context(|| format!("GET {path}"))?;
    let text = String::from_utf8(buf).context("the response is not UTF-8")?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

/// The value of the sample `series` (exact `name{labels}`) in a scrape.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_match_whole_series_only() {
        let m = "a{zone=\"z-1\"} 3\na{zone=\"z-10\"} 4\n";
        assert_eq!(sample(m, "a{zone=\"z-1\"}"), Some(3.0));
        assert_eq!(sample(m, "a{zone=\"z-10\"}"), Some(4.0));
        assert_eq!(sample(m, "a{zone=\"z-2\"}"), None);
    }
}
