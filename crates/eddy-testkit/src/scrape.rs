//! Scraping a node's Prometheus metrics, as Prometheus does.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET over HTTP/1.1, as Prometheus scrapes; returns the body.
pub async fn http_get(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("not an http url: {url}"))?;
    let (host, path) = rest.split_once('/').ok_or_else(|| anyhow::anyhow!("no path in {url}"))?;
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await??;
    let response = String::from_utf8(response)?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no header end"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "scrape answered {head}");
    anyhow::ensure!(head.to_lowercase().contains("content-type: text/plain"), "scrape answered {head}");
    // Chunked bodies: drop the chunk size lines.
    if head.to_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16)?;
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        return Ok(out);
    }
    Ok(body.to_owned())
}

pub fn sum(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Scrapes the metrics of the node at `addr` (host:port).
pub async fn scrape(addr: &str) -> anyhow::Result<prometheus_parse::Scrape> {
    let body = http_get(&format!("http://{addr}/metrics")).await?;
    Ok(prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))?)
}
