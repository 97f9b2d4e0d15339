//! Endpoint strings: `host:port` or `http://host:port`, comma-separated lists.

use crate::ClientError;

/// Where `eddyd dev` listens.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7070";

/// `host:port` → `http://host:port`; URLs with a scheme are kept.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, ClientError> {
    let endpoint = endpoint.trim();
    let invalid =
        |reason: &str| ClientError::InvalidEndpoint { endpoint: endpoint.to_owned(), reason: reason.to_owned() };
    if endpoint.is_empty() {
        return Err(invalid("empty"));
    }
    let url = if endpoint.contains("://") { endpoint.to_owned() } else { format!("http://{endpoint}") };
    let authority = url.split_once("://").map_or("", |(_, rest)| rest).trim_end_matches('/');
    let port_ok =
        authority.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(invalid("expected host:port"));
    }
    Ok(url)
}

/// Parses a comma-separated list of endpoints.
pub fn parse_endpoints(list: &str) -> Result<Vec<String>, ClientError> {
    let endpoints =
        list.split(',').filter(|s| !s.trim().is_empty()).map(normalize_endpoint).collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(ClientError::InvalidEndpoint { endpoint: list.to_owned(), reason: "no endpoint given".into() });
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(parse_endpoints("127.0.0.1:1, http://h:2").unwrap(), vec!["http://127.0.0.1:1", "http://h:2"]);
        assert!(parse_endpoints("").is_err());
        assert!(parse_endpoints("localhost").is_err());
        assert!(parse_endpoints("h:99999").is_err());
    }
}
