//! Trace ids in X-Ray's form, which native functions see (`Lambda-Runtime-Trace-Id`,
//! `_X_AMZN_TRACE_ID`) and the AWS SDKs send back on every call they make from inside a
//! function (`X-Amzn-Trace-Id`): `Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=1`.
//!
//! A request from outside may name its trace with W3C Trace Context's `traceparent`
//! instead ([`root_of_traceparent`]): its 32-hex trace-id is the same 128 bits as an X-Ray
//! root's epoch and id.
//!
//! The root names a whole trace (every invocation one request caused); the parent is
//! one invocation's span, derived from its id, so a call that carries the header says
//! which running invocation made it. Function-to-function calls keep the root and
//! start a new span.

/// The root of a new trace started by invocation `invocation_id`: `1-<epoch>-<24 hex>`,
/// the hex the id's last 24 hex digits (a UUIDv7's random part), the epoch the second
/// its UUIDv7 timestamp names (now, for an id of another shape). Derived from the id
/// alone, so every call an invocation makes names the same root.
pub fn new_root(invocation_id: &str) -> String {
    let hex: String = invocation_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    let epoch = match u64::from_str_radix(&hex, 16) {
        Ok(ms) if hex.len() == 12 => ms / 1000,
        _ => u64::try_from(crate::wall::now_ms() / 1000).unwrap_or(0),
    };
    format!("1-{epoch:08x}-{}", last_hex(invocation_id, 24))
}

/// The span of invocation `invocation_id`: its last 16 hex digits (a UUID's low 64
/// bits), lowercase.
pub fn span_of(invocation_id: &str) -> String {
    last_hex(invocation_id, 16)
}

/// [`span_of`] as bytes, without allocating: W3C's parent-id and OTLP's span id of the
/// invocation.
pub fn span_id(invocation_id: &str) -> [u8; 16] {
    let mut out = [b'0'; 16];
    let digits = invocation_id.bytes().rev().filter(u8::is_ascii_hexdigit);
    for (slot, digit) in out.iter_mut().rev().zip(digits) {
        *slot = digit.to_ascii_lowercase();
    }
    out
}

/// The 128-bit trace id of root `root` (`1-<8 hex>-<24 hex>`) as W3C's trace-id and
/// OTLP's traceId write it: the 32 hex digits of its epoch and id, lowercase. `None`
/// for text not of a root's form.
pub fn trace_id(root: &str) -> Option<[u8; 32]> {
    let b = root.as_bytes();
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    if b.len() != 35 || &b[..2] != b"1-" || b[10] != b'-' || !hex(&b[2..10]) || !hex(&b[11..]) {
        return None;
    }
    let mut out = [0; 32];
    out[..8].copy_from_slice(&b[2..10]);
    out[8..].copy_from_slice(&b[11..]);
    out.make_ascii_lowercase();
    Some(out)
}

/// The W3C `traceparent` of invocation `invocation_id` in trace `root`:
/// `00-<trace-id>-<the invocation's span>-01`, built on the stack (the gateway sets it
/// on every http guest's request). `None` for a `root` not of a root's form.
pub fn traceparent(root: &str, invocation_id: &str) -> Option<[u8; 55]> {
    let trace = trace_id(root)?;
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    out[3..35].copy_from_slice(&trace);
    out[36..52].copy_from_slice(&span_id(invocation_id));
    Some(out)
}

/// [`header`] for invocation `invocation_id` (its span) in trace `root`, built on the
/// stack as [`traceparent`] is. `None` for a `root` not of a root's form.
pub fn header_of(root: &str, invocation_id: &str) -> Option<[u8; 74]> {
    trace_id(root)?;
    let mut out = *b"Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=1";
    out[5..40].copy_from_slice(root.as_bytes());
    out[48..64].copy_from_slice(&span_id(invocation_id));
    Some(out)
}

/// The X-Ray header value of span `span` in trace `root`. `Sampled=1`: Wisp records
/// every invocation (and exports each as a span when `--otlp-endpoint` is set).
pub fn header(root: &str, span: &str) -> String {
    format!("Root={root};Parent={span};Sampled=1")
}

/// The `Root` and `Parent` of an X-Ray header value (each `None` when missing or not
/// of X-Ray's shape). Other fields (`Sampled`, `Lineage`, …) are ignored.
pub fn parse(value: &str) -> (Option<&str>, Option<&str>) {
    let (mut root, mut parent) = (None, None);
    for field in value.split(';') {
        match field.trim().split_once('=') {
            Some(("Root", r)) if is_root(r) => root = Some(r),
            Some(("Parent", p)) if p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit()) => {
                parent = Some(p)
            }
            _ => {}
        }
    }
    (root, parent)
}

/// The trace root a W3C `traceparent` names (`<version>-<32 hex trace-id>-<16 hex
/// parent-id>-<2 hex flags>`), in X-Ray's form: the trace-id's first 8 hex digits are the
/// root's epoch field and the other 24 its id, as AWS maps one onto the other. `None` for
/// a header of another shape, version `ff`, or an all-zero trace-id or parent-id (which
/// the W3C spec says to ignore). Hex digits are lowercase in the root, whatever the
/// header's case (the spec allows only lowercase; uppercase is taken, not refused).
pub fn root_of_traceparent(value: &str) -> Option<String> {
    let mut fields = value.trim().split('-');
    let (version, id, parent, flags) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    // Version 00 has exactly four fields; a later version may add more after them.
    let valid = hex(version, 2)
        && !version.eq_ignore_ascii_case("ff")
        && (version != "00" || fields.next().is_none())
        && hex(id, 32)
        && !zero(id)
        && hex(parent, 16)
        && !zero(parent)
        && hex(flags, 2);
    valid.then(|| {
        let id = id.to_ascii_lowercase();
        format!("1-{}-{}", &id[..8], &id[8..])
    })
}

/// The trace root a request names: W3C's `traceparent` when it is well-formed, else the
/// `Root` of an X-Ray `X-Amzn-Trace-Id`; `None` when neither does (a malformed header is
/// ignored, as the W3C spec asks: the invocation starts a trace of its own).
pub fn root_of_request(traceparent: Option<&str>, amzn_trace_id: Option<&str>) -> Option<String> {
    traceparent
        .and_then(root_of_traceparent)
        .or_else(|| amzn_trace_id.and_then(|value| parse(value).0).map(str::to_owned))
}

/// Whether `text` is a trace root of X-Ray's form, `1-<8 hex>-<24 hex>`.
pub fn is_root(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), ["1", epoch, id] if hex(epoch, 8) && hex(id, 24))
}

/// The last `n` hex digits of `text` (zeros in front when it has fewer).
fn last_hex(text: &str, n: usize) -> String {
    let hex: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let tail = &hex[hex.len().saturating_sub(n)..];
    let mut out = "0".repeat(n - tail.len());
    out.push_str(std::str::from_utf8(tail).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_spans_and_headers_round_trip() {
        let id = "0190f6a2-7b3c-7def-8123-456789abcdef";
        let root = new_root(id);
        assert!(is_root(&root), "{root}");
        // The UUIDv7's own time (0x0190f6a27b3c ms), so the same id gives the same root.
        assert_eq!(
            root,
            format!("1-{:08x}-7b3c7def8123456789abcdef", 0x0190_f6a2_7b3c_u64 / 1000)
        );
        assert_eq!(new_root(id), root);
        assert!(root.ends_with("-7b3c7def8123456789abcdef"), "{root}");
        let span = span_of(id);
        assert_eq!(span, "8123456789abcdef");
        let value = header(&root, &span);
        assert_eq!(parse(&value), (Some(root.as_str()), Some(span.as_str())));
        assert_eq!(span_of("ab"), "00000000000000ab");
        assert_eq!(&span_id(id), span.as_bytes());
        assert_eq!(&span_id("AB"), b"00000000000000ab");
    }

    #[test]
    fn a_traceparent_names_the_root_and_the_invocations_span() {
        let id = "0190f6a2-7b3c-7def-8123-456789abcdef";
        let root = "1-4BF92F35-77b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_id(root)
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let value = traceparent(root, id).unwrap();
        let value = std::str::from_utf8(&value).unwrap();
        assert_eq!(value, "00-4bf92f3577b34da6a3ce929d0e0e4736-8123456789abcdef-01");
        let xray = header_of(root, id).unwrap();
        assert_eq!(std::str::from_utf8(&xray).unwrap(), header(root, &span_of(id)));
        // It names the same trace again.
        assert_eq!(
            root_of_traceparent(value).as_deref(),
            Some("1-4bf92f35-77b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "1-4bf92f35-77b34da6a3ce929d0e0e473",
            "2-4bf92f35-77b34da6a3ce929d0e0e4736",
            "1-4bf92f3g-77b34da6a3ce929d0e0e4736",
        ] {
            assert_eq!(trace_id(bad), None, "{bad}");
            assert_eq!(traceparent(bad, id), None, "{bad}");
            assert_eq!(header_of(bad, id), None, "{bad}");
        }
    }

    #[test]
    fn a_traceparent_names_the_root_of_its_trace_id() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            root_of_traceparent(value).as_deref(),
            Some("1-4bf92f35-77b34da6a3ce929d0e0e4736")
        );
        let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00";
        assert_eq!(
            root_of_traceparent(upper).as_deref(),
            Some("1-4bf92f35-77b34da6a3ce929d0e0e4736")
        );
        // A later version may carry more fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(root_of_traceparent(later).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(root_of_traceparent(bad), None, "{bad}");
        }
        // Either header names the trace; a broken traceparent gives way to X-Ray's.
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8";
        assert_eq!(
            root_of_request(Some(value), Some(xray)).as_deref(),
            Some("1-4bf92f35-77b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            root_of_request(Some("00-broken"), Some(xray)).as_deref(),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(root_of_request(None, None), None);
    }

    #[test]
    fn foreign_or_broken_headers_give_nothing() {
        assert_eq!(parse(""), (None, None));
        assert_eq!(parse("Root=2-x;Parent=zz"), (None, None));
        let (root, parent) = parse(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0",
        );
        assert_eq!(root, Some("1-5759e988-bd862e3fe1be46a994272793"));
        assert_eq!(parent, Some("53995c3f42cd8ad8"));
    }
}
