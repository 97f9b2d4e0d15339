//! Free loopback ports.

use std::net::TcpListener;

/// A port that was free a moment ago: bound to port 0, read, released.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
