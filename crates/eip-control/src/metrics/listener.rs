//! A tiny std-only HTTP listener that serves the exposition on `GET /metrics`,
//! one request at a time, on a thread of its own.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Checks a `--metrics` address: loopback only unless `any`.
pub fn check_address(addr: SocketAddr, any: bool) -> Result<()> {
    if !addr.ip().is_loopback() && !any {
        bail!(
            "--metrics {addr}: not a loopback address; the metrics listener has no authentication \
             (use 127.0.0.1 or [::1], or add --metrics-any to expose it anyway)"
        );
    }
    Ok(())
}

/// Largest request head read.
const MAX_REQUEST: usize = 8192;
/// Read/write timeout per connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds `addr` and serves `GET /metrics` with `render_now()` on a thread of its
/// own, one request at a time. Returns the bound address.
pub fn spawn<F>(addr: SocketAddr, render_now: F) -> Result<SocketAddr>
where
    F: Fn() -> String + Send + 'static,
{
    let listener =
        TcpListener::bind(addr).with_context(|| format!("binding metrics listener {addr}"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("eipd-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        let _ = serve(s, &render_now);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
        .context("spawning the metrics thread")?;
    Ok(bound)
}

/// Reads one request head and answers it.
fn serve(mut s: TcpStream, render_now: &dyn Fn() -> String) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = [0u8; MAX_REQUEST];
    let mut n = 0;
    while n < buf.len() {
        let r = s.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let line = buf[..n].split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    let (status, kind, body) = if method == Some("GET") && path == Some("/metrics") {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render_now(),
        )
    } else {
        ("404 Not Found", "text/plain", "not found\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_loopback() {
        assert!(check_address("127.0.0.1:9477".parse().unwrap(), false).is_ok());
        assert!(check_address("[::1]:9477".parse().unwrap(), false).is_ok());
        assert!(check_address("0.0.0.0:9477".parse().unwrap(), false).is_err());
        assert!(check_address("192.0.2.1:9477".parse().unwrap(), false).is_err());
        assert!(check_address("0.0.0.0:9477".parse().unwrap(), true).is_ok());
    }

    #[test]
    fn serves_metrics_and_404() {
        let addr = spawn("127.0.0.1:0".parse().unwrap(), || "eipd_x 1\n".into()).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(ok.ends_with("\r\n\r\neipd_x 1\n"));
        assert!(get("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    }
}
