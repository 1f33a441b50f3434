//! Command-line shorthands: `tcp/80`, `10.1.0.21:8080@2`, `[2001:db8::7]:40000`,
//! `:4789`.

use eip_dataplane::tables::Protocol;
use std::net::IpAddr;

/// `tcp/80` or `udp/53`.
///
/// # Errors
/// A message saying what is wrong.
pub fn service(text: &str) -> Result<(Protocol, u16), String> {
    let (proto, port) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected PROTOCOL/PORT, e.g. tcp/80"))?;
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return Err(format!("{text:?}: protocol must be tcp or udp")),
    };
    let port = port
        .parse()
        .map_err(|_| format!("{text:?}: port must be 1-65535"))?;
    Ok((protocol, port))
}

/// A backend: `ADDRESS`, `ADDRESS:PORT`, `[IPV6]:PORT`, each optionally
/// followed by `@WEIGHT`.
///
/// # Errors
/// A message saying what is wrong.
pub fn backend(text: &str) -> Result<(IpAddr, Option<u16>, Option<u32>), String> {
    let (endpoint_text, weight) = match text.rsplit_once('@') {
        Some((e, w)) => {
            let w = w
                .parse()
                .map_err(|_| format!("{text:?}: weight {w:?} is not a number"))?;
            (e, Some(w))
        }
        None => (text, None),
    };
    let (address, port) = endpoint(endpoint_text).map_err(|e| match e {
        Endpoint::Syntax => {
            format!("{text:?}: expected ADDRESS[:PORT][@WEIGHT] (IPv6 with a port: [ADDRESS]:PORT)")
        }
        Endpoint::Port(p) => format!("{text:?}: port {p:?} must be 1-65535"),
    })?;
    Ok((address, port, weight))
}

/// An address with an optional port: `ADDRESS`, `ADDRESS:PORT`, `[IPV6]` or
/// `[IPV6]:PORT`.
///
/// # Errors
/// A message saying what is wrong.
pub fn address_port(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    endpoint(text).map_err(|e| match e {
        Endpoint::Syntax => {
            format!("{text:?}: expected ADDRESS[:PORT] (IPv6 with a port: [ADDRESS]:PORT)")
        }
        Endpoint::Port(p) => format!("{text:?}: port {p:?} must be 0-65535"),
    })
}

/// What is wrong with an `ADDRESS[:PORT]`.
enum Endpoint {
    Syntax,
    Port(String),
}

fn endpoint(text: &str) -> Result<(IpAddr, Option<u16>), Endpoint> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Ok((address, None));
    }
    let (address, port) = if let Some(rest) = text.strip_prefix('[') {
        let (address, rest) = rest.split_once(']').ok_or(Endpoint::Syntax)?;
        match rest {
            "" => (address, None),
            _ => (
                address,
                Some(rest.strip_prefix(':').ok_or(Endpoint::Syntax)?),
            ),
        }
    } else {
        let (address, port) = text.rsplit_once(':').ok_or(Endpoint::Syntax)?;
        (address, Some(port))
    };
    let address: IpAddr = address.parse().map_err(|_| Endpoint::Syntax)?;
    let port = match port {
        Some(p) => Some(p.parse().map_err(|_| Endpoint::Port(p.to_string()))?),
        None => None,
    };
    Ok((address, port))
}

/// A trace endpoint: `ADDRESS`, `ADDRESS:PORT`, `[IPV6]:PORT` or `:PORT`.
///
/// # Errors
/// A message saying what is wrong.
pub fn trace_endpoint(text: &str) -> Result<(Option<IpAddr>, Option<u16>), String> {
    let bad = || format!("{text:?}: expected ADDRESS, ADDRESS:PORT, [IPV6]:PORT or :PORT");
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("{text:?}: port {p:?} must be 0-65535"))
    };
    if let Ok(address) = text.parse::<IpAddr>() {
        return Ok((Some(address), None));
    }
    if let Some(p) = text.strip_prefix(':') {
        return Ok((None, Some(port(p)?)));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (address, rest) = rest.split_once(']').ok_or_else(bad)?;
        let address = address.parse().map_err(|_| bad())?;
        return match rest {
            "" => Ok((Some(address), None)),
            _ => Ok((
                Some(address),
                Some(port(rest.strip_prefix(':').ok_or_else(bad)?)?),
            )),
        };
    }
    let (address, p) = text.rsplit_once(':').ok_or_else(bad)?;
    Ok((Some(address.parse().map_err(|_| bad())?), Some(port(p)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eip_dataplane::tables::Protocol;

    #[test]
    fn service_and_backend_shorthands() {
        assert_eq!(service("tcp/80"), Ok((Protocol::Tcp, 80)));
        assert_eq!(service("UDP/53"), Ok((Protocol::Udp, 53)));
        assert!(service("sctp/80").is_err());
        assert!(service("tcp/70000").is_err());
        assert!(service("tcp").is_err());
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(backend("10.0.0.1"), Ok((ip("10.0.0.1"), None, None)));
        assert_eq!(
            backend("10.0.0.1:8080@3"),
            Ok((ip("10.0.0.1"), Some(8080), Some(3)))
        );
        assert_eq!(backend("fd00::1@0"), Ok((ip("fd00::1"), None, Some(0))));
        assert_eq!(backend("[fd00::1]:53"), Ok((ip("fd00::1"), Some(53), None)));
        assert_eq!(backend("[fd00::1]"), Ok((ip("fd00::1"), None, None)));
        for bad in [
            "10.0.0.1:x",
            "10.0.0.1@x",
            "[fd00::1",
            "nope",
            "10.0.0.300:80",
        ] {
            assert!(backend(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_with_ports() {
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(
            address_port("198.51.100.7:40000"),
            Ok((ip("198.51.100.7"), Some(40000)))
        );
        assert_eq!(address_port("192.0.2.20"), Ok((ip("192.0.2.20"), None)));
        assert_eq!(
            address_port("[2001:db8::7]:53"),
            Ok((ip("2001:db8::7"), Some(53)))
        );
        assert_eq!(address_port("2001:db8::7"), Ok((ip("2001:db8::7"), None)));
        assert_eq!(
            address_port("192.0.2.20:http"),
            Err("\"192.0.2.20:http\": port \"http\" must be 0-65535".into())
        );
        for bad in ["192.0.2.20@1", "[2001:db8::7]53", "host:80", ""] {
            assert!(address_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trace_endpoints() {
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(trace_endpoint("192.0.2.10"), Ok((ip("192.0.2.10"), None)));
        assert_eq!(
            trace_endpoint("192.0.2.10:443"),
            Ok((ip("192.0.2.10"), Some(443)))
        );
        assert_eq!(trace_endpoint("2001:db8::1"), Ok((ip("2001:db8::1"), None)));
        assert_eq!(
            trace_endpoint("[2001:db8::1]:53"),
            Ok((ip("2001:db8::1"), Some(53)))
        );
        assert_eq!(
            trace_endpoint("[2001:db8::1]"),
            Ok((ip("2001:db8::1"), None))
        );
        assert_eq!(trace_endpoint(":4789"), Ok((None, Some(4789))));
        for bad in [
            "",
            "x",
            "192.0.2.10:",
            ":x",
            "192.0.2.10:70000",
            "[::1",
            "[::1]x",
        ] {
            assert!(trace_endpoint(bad).is_err(), "{bad}");
        }
    }
}
