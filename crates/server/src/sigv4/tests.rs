use super::*;
use http::Request;
use serde::Deserialize;

/// Requests signed by real botocore: see `tests/data/sigv4-gen.py`.
const BOTOCORE: &str = include_str!("../../tests/data/sigv4-botocore.json");

#[derive(Deserialize)]
struct Fixtures {
    cases: Vec<Fixture>,
}

#[derive(Deserialize, Clone)]
struct Fixture {
    name: String,
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: String,
    now: u64,
    access_key_id: String,
    secret: String,
    region: String,
    canonical_request: String,
}

impl Fixture {
    fn parts(&self) -> Parts {
        parts(&self.method, &self.uri, &self.headers)
    }

    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.now)
    }

    fn verify(&self) -> Result<Credential, SigV4Error> {
        self.verify_with(&self.parts(), self.body.as_bytes(), self.now(), &self.secret)
    }

    fn verify_with(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
        secret: &str,
    ) -> Result<Credential, SigV4Error> {
        let id = self.access_key_id.clone();
        verify(parts, body, now, |c| {
            (c.access_key_id == id).then(|| secret.to_string())
        })
    }

    fn header(&self, name: &str) -> &str {
        let (_, value) = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap();
        value
    }

    fn with_header(&self, name: &str, value: Option<&str>) -> Fixture {
        let mut fixture = self.clone();
        fixture.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            fixture.headers.push((name.to_string(), value.to_string()));
        }
        fixture
    }

    fn with_authorization(&self, value: &str) -> Fixture {
        self.with_header("Authorization", Some(value))
    }
}

fn parts(method: &str, uri: &str, headers: &[(String, String)]) -> Parts {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn botocore(name: &str) -> Fixture {
    let fixtures: Fixtures = serde_json::from_str(BOTOCORE).unwrap();
    fixtures.cases.into_iter().find(|c| c.name == name).unwrap()
}

fn all_botocore() -> Vec<Fixture> {
    serde_json::from_str::<Fixtures>(BOTOCORE).unwrap().cases
}

// ---- AWS's published test suite (aws-sig-v4-test-suite) ----

const AWS_KEY: &str = "AKIDEXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Verifies one of AWS's vectors: `example.amazonaws.com`, 20150830T123600Z,
/// `us-east-1`, service `service`, `host;x-amz-date` plus `extra` headers signed.
fn aws_vector(method: &str, uri: &str, extra: &[(&str, &str)], body: &str, signature: &str) {
    let mut headers = vec![
        ("Host".to_string(), "example.amazonaws.com".to_string()),
        ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
    ];
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let mut signed: Vec<String> = headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    signed.sort();
    headers.push((
        "Authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={AWS_KEY}/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={}, Signature={signature}",
            signed.join(";")
        ),
    ));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    let credential = verify_for(
        "service",
        &parts(method, uri, &headers),
        body.as_bytes(),
        now,
        |c| (c.access_key_id == AWS_KEY).then_some(AWS_SECRET),
    )
    .unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
    assert_eq!(
        credential,
        Credential {
            access_key_id: AWS_KEY.to_string(),
            date: "20150830".to_string(),
            region: "us-east-1".to_string(),
            service: "service".to_string(),
        }
    );
}

#[test]
fn aws_test_suite_vectors_verify() {
    let vanilla = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    aws_vector("GET", "/", &[], "", vanilla); // get-vanilla
    aws_vector("GET", "/example1/example2/../..", &[], "", vanilla); // get-relative-relative
    aws_vector("GET", "/./", &[], "", vanilla); // get-slash-dot-slash
    aws_vector(
        "GET",
        "//example//",
        &[],
        "",
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    ); // get-slashes
    aws_vector(
        "GET",
        "/?Param2=value2&Param1=value1",
        &[],
        "",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ); // get-vanilla-query-order-key-case
    aws_vector(
        "GET",
        "/?Param1=value1",
        &[],
        "",
        "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    ); // get-vanilla-empty-query-key
    aws_vector(
        "GET",
        "/?%E1%88%B4=bar",
        &[],
        "",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ); // get-vanilla-utf8-query
    aws_vector(
        "GET",
        "/",
        &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
        "",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ); // get-header-value-trim
    aws_vector(
        "POST",
        "/",
        &[],
        "",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ); // post-vanilla
    aws_vector(
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "Param1=value1",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ); // post-x-www-form-urlencoded
}

#[test]
fn canonical_paths_match_aws_test_suite() {
    // The suite's raw paths (get-space, get-utf8, …) and their canonical forms.
    for (raw, canonical) in [
        ("/example space/", "/example%20space/"),
        ("/ሴ", "/%E1%88%B4"),
        ("//example//", "/example/"),
        ("/example/..", "/"),
        ("/example1/example2/../..", "/"),
        ("/./", "/"),
        ("", "/"),
        ("/-._~0123456789AZaz", "/-._~0123456789AZaz"),
        ("/a/./b/../c", "/a/c"),
        // What a wire path becomes for every service but S3: encoded again.
        (
            "/functions/hello%3Alive/invocations",
            "/functions/hello%253Alive/invocations",
        ),
        (
            "/functions/hello:live/invocations",
            "/functions/hello%3Alive/invocations",
        ),
    ] {
        assert_eq!(canonical_path(raw), canonical, "{raw:?}");
    }
}

#[test]
fn canonical_queries_are_decoded_encoded_and_sorted() {
    for (raw, canonical) in [
        ("", ""),
        ("Param2=value2&Param1=value1", "Param1=value1&Param2=value2"),
        ("b=2&a=2&a=1", "a=1&a=2&b=2"),
        ("a=x%20y&c&b=%2f", "a=x%20y&b=%2F&c="),
        ("k=a+b", "k=a%2Bb"),
        ("%E1%88%B4=bar", "%E1%88%B4=bar"),
        ("Qualifier=live&&", "Qualifier=live"),
    ] {
        assert_eq!(canonical_query(raw), canonical, "{raw:?}");
    }
}

// ---- Requests signed by botocore (the AWS CLI and boto3) ----

#[test]
fn botocore_requests_verify() {
    let cases = all_botocore();
    assert!(cases.len() >= 6);
    for case in cases {
        let credential = case.verify().unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(credential.access_key_id, case.access_key_id, "{}", case.name);
        assert_eq!(credential.region, case.region, "{}", case.name);
        assert_eq!(credential.service, "lambda", "{}", case.name);
        assert_eq!(credential.date, "20260314", "{}", case.name);
    }
}

#[test]
fn canonical_requests_match_botocore() {
    for case in all_botocore() {
        let auth_header = case.header("Authorization").to_string();
        let auth = Authorization::parse(&auth_header).unwrap();
        let parts = case.parts();
        let payload_hash = match Payload::of(&parts.headers).unwrap() {
            Payload::Claimed(hash) => hash,
            Payload::Unsigned => UNSIGNED_PAYLOAD.to_string(),
            Payload::Body => hex::encode(digest::digest(&digest::SHA256, case.body.as_bytes())),
        };
        let canonical = canonical_request(&parts, auth.signed_headers, &payload_hash).unwrap();
        assert_eq!(
            String::from_utf8(canonical).unwrap(),
            case.canonical_request,
            "{}",
            case.name
        );
    }
}

#[test]
fn a_qualified_name_is_signed_double_encoded() {
    // The AWS CLI sends `hello:live` as `hello%3Alive` and signs `hello%253Alive`.
    let case = botocore("qualified-name");
    assert!(case.uri.contains("hello%3Alive"));
    assert!(case.canonical_request.contains("hello%253Alive"));
    case.verify().unwrap();
    // A proxy that decodes the path breaks the signature.
    let mut decoded = case.clone();
    decoded.uri = case.uri.replace("%3A", ":");
    assert!(matches!(
        decoded.verify(),
        Err(SigV4Error::SignatureMismatch { .. })
    ));
}

#[test]
fn http2_host_comes_from_the_authority() {
    let case = botocore("json-body");
    let mut h2 = case.with_header("Host", None);
    h2.uri = format!("http://{}{}", case.header("Host"), case.uri);
    h2.verify().unwrap();
}

#[test]
fn unsigned_headers_may_change() {
    let case = botocore("qualifier-query").with_header("User-Agent", Some("something else"));
    case.verify().unwrap();
}

#[test]
fn unsigned_payload_leaves_the_body_unsigned() {
    let case = botocore("unsigned-payload");
    case.verify_with(&case.parts(), b"{\"x\": true}", case.now(), &case.secret)
        .unwrap();
}

#[test]
fn the_lookup_gets_the_claimed_credential() {
    let case = botocore("qualifier-query");
    let mut seen = None;
    verify(&case.parts(), case.body.as_bytes(), case.now(), |c| {
        seen = Some(c.clone());
        Some(case.secret.as_bytes().to_vec())
    })
    .unwrap();
    let seen = seen.unwrap();
    assert_eq!(seen.access_key_id, "WKABCDEFGHIJKLMNOP");
    assert_eq!(seen.region, "eu-west-1");
}

#[test]
fn a_date_header_stands_in_for_x_amz_date() {
    let secret = "s3cr3t";
    let date = "Sat, 14 Mar 2026 15:09:26 GMT";
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_500_966);
    let credential = Credential {
        access_key_id: "WKABCDEFGHIJKLMNOP".to_string(),
        date: "20260314".to_string(),
        region: "us-east-1".to_string(),
        service: "lambda".to_string(),
    };
    let headers = vec![
        ("Host".to_string(), "localhost".to_string()),
        ("Date".to_string(), date.to_string()),
    ];
    let unsigned = parts("POST", "/2015-03-31/functions/f/invocations", &headers);
    let hash = hex::encode(digest::digest(&digest::SHA256, b"{}"));
    let canonical = canonical_request(&unsigned, "date;host", &hash).unwrap();
    let tag = signature(secret.as_bytes(), &credential, "20260314T150926Z", &canonical);
    let mut headers = headers;
    headers.push((
        "Authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential=WKABCDEFGHIJKLMNOP/20260314/us-east-1/lambda/aws4_request, \
             SignedHeaders=date;host, Signature={}",
            hex::encode(tag.as_ref())
        ),
    ));
    let signed = parts("POST", "/2015-03-31/functions/f/invocations", &headers);
    assert_eq!(verify(&signed, b"{}", now, |_| Some(secret)).unwrap(), credential);
}

#[test]
fn is_sigv4_recognises_the_scheme() {
    let with = |value: &str| parts("GET", "/", &[("Authorization".to_string(), value.to_string())]).headers;
    assert!(is_sigv4(&with("AWS4-HMAC-SHA256 Credential=a")));
    assert!(!is_sigv4(&with("Bearer wsk_abc")));
    assert!(!is_sigv4(&with("AWS4-HMAC-SHA256X Credential=a")));
    assert!(!is_sigv4(&HeaderMap::new()));
}

// ---- Refusals ----

#[test]
fn a_wrong_secret_is_refused_without_leaking_either_signature() {
    let case = botocore("json-body");
    let err = case
        .verify_with(&case.parts(), case.body.as_bytes(), case.now(), "not-the-secret")
        .unwrap_err();
    assert!(matches!(err, SigV4Error::SignatureMismatch { .. }), "{err}");
    assert_eq!(err.aws_error_type(), "InvalidSignatureException");
    let message = err.to_string();
    assert!(message.contains("WKABCDEFGHIJKLMNOP"), "{message}");
    assert!(message.contains(&case.canonical_request), "{message}");
    // Neither secret, nor the signature the server computed, nor the client's.
    assert!(!message.contains("not-the-secret"));
    assert!(!message.contains(&case.secret));
    let auth_header = case.header("Authorization").to_string();
    let auth = Authorization::parse(&auth_header).unwrap();
    let canonical = case.canonical_request.as_bytes();
    let computed = signature(b"not-the-secret", &auth.credential, "20260314T150926Z", canonical);
    assert!(!message.contains(&hex::encode(computed.as_ref())));
    assert!(!message.contains(&hex::encode(auth.signature)));
}

#[test]
fn a_tampered_body_is_refused() {
    let case = botocore("json-body");
    let err = case
        .verify_with(
            &case.parts(),
            b"{\"name\": \"evil\", \"n\": 1}",
            case.now(),
            &case.secret,
        )
        .unwrap_err();
    assert!(matches!(err, SigV4Error::SignatureMismatch { .. }), "{err}");
}

#[test]
fn a_body_that_does_not_match_its_signed_hash_is_refused() {
    let case = botocore("content-sha256");
    let err = case
        .verify_with(&case.parts(), b"{\"x\": false}", case.now(), &case.secret)
        .unwrap_err();
    let SigV4Error::BodyHashMismatch { claimed, actual } = &err else {
        panic!("{err}");
    };
    assert_eq!(claimed, case.header("X-Amz-Content-SHA256"));
    assert_eq!(
        actual,
        &hex::encode(digest::digest(&digest::SHA256, b"{\"x\": false}"))
    );
}

#[test]
fn a_tampered_signed_header_is_refused() {
    let case = botocore("qualifier-query").with_header("X-Amz-Invocation-Type", Some("RequestResponse"));
    assert!(matches!(case.verify(), Err(SigV4Error::SignatureMismatch { .. })));
}

#[test]
fn a_tampered_query_or_method_is_refused() {
    let mut query = botocore("qualifier-query");
    query.uri = query.uri.replace("live", "prod");
    assert!(matches!(
        query.verify(),
        Err(SigV4Error::SignatureMismatch { .. })
    ));
    let mut method = botocore("json-body");
    method.method = "PUT".to_string();
    assert!(matches!(
        method.verify(),
        Err(SigV4Error::SignatureMismatch { .. })
    ));
}

#[test]
fn a_removed_signed_header_is_named() {
    let case = botocore("qualifier-query").with_header("X-Amz-Invocation-Type", None);
    let err = case.verify().unwrap_err();
    assert!(
        matches!(&err, SigV4Error::SignedHeaderMissing(name) if name == "x-amz-invocation-type"),
        "{err}"
    );
    // A name no header can have is only missing, never a panic.
    let auth = case
        .header("Authorization")
        .replace("SignedHeaders=host;", "SignedHeaders=a(b);host;");
    let err = case.with_authorization(&auth).verify().unwrap_err();
    assert!(
        matches!(&err, SigV4Error::SignedHeaderMissing(name) if name == "a(b)"),
        "{err}"
    );
}

#[test]
fn skew_beyond_fifteen_minutes_is_refused() {
    let case = botocore("json-body");
    let at = |offset: i64| {
        let now = case.now();
        let shift = Duration::from_secs(offset.unsigned_abs());
        let now = if offset < 0 { now - shift } else { now + shift };
        case.verify_with(&case.parts(), case.body.as_bytes(), now, &case.secret)
    };
    at(14 * 60).unwrap();
    at(-14 * 60).unwrap();
    at(15 * 60).unwrap();
    for offset in [15 * 60 + 1, -16 * 60, 86_400 * 365] {
        let err = at(offset).unwrap_err();
        assert!(matches!(err, SigV4Error::RequestTimeTooSkewed { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("`20260314T150926Z`"), "{message}");
        assert!(message.contains("15 minutes"), "{message}");
    }
}

#[test]
fn an_unknown_key_is_refused() {
    let case = botocore("json-body");
    let err = verify(
        &case.parts(),
        case.body.as_bytes(),
        case.now(),
        |_| None::<Vec<u8>>,
    )
    .unwrap_err();
    assert!(
        matches!(&err, SigV4Error::UnknownAccessKey(id) if id == "WKABCDEFGHIJKLMNOP"),
        "{err}"
    );
    assert_eq!(err.aws_error_type(), "UnrecognizedClientException");
}

#[test]
fn another_service_is_refused() {
    let case = botocore("json-body");
    let err = verify_for("s3", &case.parts(), case.body.as_bytes(), case.now(), |_| {
        Some(case.secret.clone())
    })
    .unwrap_err();
    assert!(matches!(err, SigV4Error::WrongService { .. }), "{err}");
    assert!(err.to_string().contains("`lambda`"), "{err}");
}

#[test]
fn a_scope_date_other_than_the_request_date_is_refused() {
    let case = botocore("json-body");
    let auth = case.header("Authorization").replace("/20260314/", "/20260313/");
    let err = case.with_authorization(&auth).verify().unwrap_err();
    assert!(matches!(err, SigV4Error::ScopeDateMismatch { .. }), "{err}");
}

#[test]
fn an_unsigned_host_is_refused() {
    let case = botocore("json-body");
    let auth = case
        .header("Authorization")
        .replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date");
    let err = case.with_authorization(&auth).verify().unwrap_err();
    assert!(matches!(err, SigV4Error::HostNotSigned { .. }), "{err}");
}

#[test]
fn a_missing_or_invalid_date_is_refused() {
    let case = botocore("json-body");
    let err = case.with_header("X-Amz-Date", None).verify().unwrap_err();
    assert!(matches!(err, SigV4Error::MissingDate), "{err}");
    for bad in [
        "2026-03-14T15:09:26Z",
        "20260314T150926",
        "20261314T150926Z",
        "+20260314T15092Z",
    ] {
        let err = case.with_header("X-Amz-Date", Some(bad)).verify().unwrap_err();
        assert!(
            matches!(
                err,
                SigV4Error::InvalidHeader {
                    header: "X-Amz-Date",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    let err = case
        .with_header("X-Amz-Date", None)
        .with_header("Date", Some("yesterday"))
        .verify()
        .unwrap_err();
    assert!(
        matches!(err, SigV4Error::InvalidHeader { header: "Date", .. }),
        "{err}"
    );
}

#[test]
fn chunked_or_invalid_content_hashes_are_refused() {
    let case = botocore("json-body");
    let err = case
        .with_header("X-Amz-Content-SHA256", Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
        .verify()
        .unwrap_err();
    assert!(matches!(err, SigV4Error::UnsupportedPayload(_)), "{err}");
    let err = case
        .with_header("X-Amz-Content-SHA256", Some("abc"))
        .verify()
        .unwrap_err();
    assert!(matches!(err, SigV4Error::InvalidHeader { .. }), "{err}");
}

#[test]
fn a_missing_authorization_is_refused() {
    let case = botocore("json-body");
    for header in [None, Some("Bearer wsk_abc"), Some("AWS4-HMAC-SHA256")] {
        let err = case.with_header("Authorization", header).verify().unwrap_err();
        assert!(matches!(err, SigV4Error::NotSigV4), "{header:?}: {err}");
        assert_eq!(err.aws_error_type(), "MissingAuthenticationTokenException");
    }
}

#[test]
fn malformed_authorization_headers_say_what_is_wrong() {
    let case = botocore("json-body");
    let sig = "Signature=2e82efbe66493577de33495718302dccadfa1a8c4f574db74136b438afa1d485";
    let cred = "Credential=WKABCDEFGHIJKLMNOP/20260314/us-east-1/lambda/aws4_request";
    for (header, says) in [
        (
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date"),
            "missing `Signature=`",
        ),
        (
            format!("AWS4-HMAC-SHA256 {sig}"),
            "missing `Credential=`, `SignedHeaders=`",
        ),
        (
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date, {sig}, junk"),
            "`junk` is not NAME=VALUE",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=WKABCDEFGHIJKLMNOP/20260314/us-east-1/lambda, \
                 SignedHeaders=host;x-amz-date, {sig}"
            ),
            "has 4 parts, not 5",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=WKABCDEFGHIJKLMNOP/20260314/us-east-1/lambda/aws4, \
                 SignedHeaders=host;x-amz-date, {sig}"
            ),
            "ends in `aws4`, not `aws4_request`",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=WKABCDEFGHIJKLMNOP/2026-03-14/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, {sig}"
            ),
            "has date `2026-03-14`, not YYYYMMDD",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 Credential=/20260314/us-east-1/lambda/aws4_request, SignedHeaders=host, {sig}"
            ),
            "has an empty access key id",
        ),
        (
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=Host;X-Amz-Date, {sig}"),
            "must be lowercase header names",
        ),
        (
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;;x-amz-date, {sig}"),
            "must be lowercase header names",
        ),
        (
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date, Signature=xyz"),
            "`Signature=xyz` is not 64 hexadecimal digits",
        ),
    ] {
        let err = case.with_authorization(&header).verify().unwrap_err();
        assert!(
            matches!(err, SigV4Error::MalformedAuthorization(_)),
            "{header}: {err}"
        );
        assert_eq!(err.aws_error_type(), "IncompleteSignatureException");
        let message = err.to_string();
        assert!(message.contains(says), "{header}: {message}");
        assert!(
            message.starts_with("malformed SigV4 Authorization header: "),
            "{message}"
        );
    }
}

#[test]
fn every_botocore_request_fails_with_a_wrong_secret() {
    for case in all_botocore() {
        let err = case
            .verify_with(&case.parts(), case.body.as_bytes(), case.now(), "wrong")
            .unwrap_err();
        assert!(
            matches!(err, SigV4Error::SignatureMismatch { .. }),
            "{}: {err}",
            case.name
        );
    }
}
