//! A request as the bytes that go on the socket: the request line, the
//! headers the caller gives (`Host` among them), and a body with its
//! `Content-Length`.

use super::WireError;

/// `method path HTTP/1.1`, then `headers` in the order given, then, when
/// there is a `body`, its `Content-Length` and the body itself.
///
/// Refuses a part that would break the framing: a CR, LF or NUL anywhere,
/// white space in the method, path or a header name, an empty name.
pub fn encode_request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Vec<u8>, WireError> {
    check(method, Part::Token)?;
    check(path, Part::Token)?;
    let mut request = Vec::with_capacity(128 + body.map_or(0, <[u8]>::len));
    request.extend_from_slice(format!("{method} {path} HTTP/1.1\r\n").as_bytes());
    for (name, value) in headers {
        check(name, Part::Token)?;
        check(value, Part::Value)?;
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if let Some(body) = body {
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        request.extend_from_slice(body);
    }
    Ok(request)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A method, path or header name: no white space, not empty.
    Token,
    /// A header value: spaces and tabs allowed.
    Value,
}

fn check(text: &str, part: Part) -> Result<(), WireError> {
    let breaks_framing = |c: char| match part {
        Part::Token => c.is_ascii_whitespace() || c.is_ascii_control(),
        Part::Value => c.is_ascii_control() && c != '\t',
    };
    if (part == Part::Token && text.is_empty()) || text.contains(breaks_framing) {
        return Err(WireError::BadRequestPart(text.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_its_line_its_headers_in_order_and_its_body_with_its_length() {
        let request = encode_request(
            "POST",
            "/api/orders",
            &[
                ("Host", "127.0.0.1:8080"),
                ("Content-Type", "application/json"),
            ],
            Some(b"{}"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(request).unwrap(),
            "POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn a_request_without_a_body_has_no_content_length() {
        let request = encode_request("GET", "/healthz", &[("Host", "localhost")], None).unwrap();
        assert_eq!(request, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    }

    #[test]
    fn parts_that_would_break_the_framing_are_refused() {
        let refused = |method, path, name, value| {
            encode_request(method, path, &[(name, value)], None).is_err()
        };
        assert!(refused("GET", "/a b", "Host", "x"));
        assert!(refused("GET", "/a\r\nX: y", "Host", "x"));
        assert!(refused("GET", "/", "Host", "x\r\nEvil: 1"));
        assert!(refused("GET", "/", "Bad Name", "x"));
        assert!(refused("GET", "/", "", "x"));
        assert!(refused("", "/", "Host", "x"));
        assert!(!refused("GET", "/", "Last-Event-ID", "a b\tc"));
    }
}
