//! Route auth: `auth = "jwt"` routes verify bearer JWTs (HS256 secrets, RS256 and
//! ES256 keys of a JWKS) before the function runs; `auth = "key"` routes take Wisp API
//! keys with invoke rights in the function's namespace.

use crate::util::{client, deploy_fixture, expect_problem, get_json, server};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use wisp_test_support::{TestServer, anonymous_client, repo_root};

const SECRET: &str = "a shared secret of at least 32 bytes";
const ISSUER: &str = "https://auth.example.com/";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({"sub": "ada", "iss": ISSUER, "aud": "api", "exp": now() + 600, "scope": "read write"})
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures/jwt").join(name)).unwrap()
}

fn signed(alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key_file("rs256.pem")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&key_file("es256.pem")).unwrap(),
        _ => unreachable!(),
    };
    encode(&header, claims, &key).unwrap()
}

fn jwks() -> Value {
    serde_json::from_slice(&key_file("jwks.json")).unwrap()
}

/// `http-kit` with a public route, an HS256 route and a JWKS route.
async fn deploy_kit(server: &TestServer) {
    let config = json!({"kind": "http", "routes": [
        "/open/*",
        {"path": "/hs/*", "auth": "jwt", "jwt": {"issuer": ISSUER, "audience": ["api", "web"], "secret": SECRET}},
        {"path": "/rs/*", "auth": "jwt", "jwt": {"issuer": ISSUER, "audience": "api", "jwks": jwks()}},
    ]});
    deploy_fixture(server, "kit", "http-kit", config).await;
}

async fn invocations(server: &TestServer) -> u64 {
    get_json(server, "/v1/functions/kit").await["invocations"]
        .as_u64()
        .unwrap()
}

/// Asserts a 401 with the bearer challenge; returns the problem's detail.
async fn expect_unauthorized(response: reqwest::Response, error: Option<&str>) -> String {
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    match error {
        None => assert_eq!(challenge, "Bearer realm=\"wisp\""),
        Some(error) => assert!(
            challenge.starts_with(&format!(
                "Bearer realm=\"wisp\", error=\"{error}\", error_description=\""
            )),
            "{challenge}"
        ),
    }
    let doc = expect_problem(response, 401, "unauthorized").await;
    doc["detail"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn jwt_routes_pass_good_tokens_with_their_claims_and_refuse_the_rest() {
    let server = server();
    deploy_kit(&server).await;
    // User routes are called without the admin key the test client sends by default.
    let c = anonymous_client();
    let get = |path: &str, token: Option<String>| {
        let mut r = c.get(server.at(path));
        if let Some(token) = token {
            r = r.header("authorization", format!("Bearer {token}"));
        }
        r.send()
    };

    // A good token: the function sees the verified claims, as signed.
    let token = hs256(&claims());
    let r = get("/hs/info", Some(token.clone())).await.unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    let sent = info["headers"]["x-wisp-jwt-claims"].as_str().unwrap();
    let seen: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(sent).unwrap()).unwrap();
    assert_eq!(seen["sub"], "ada");
    assert_eq!(info["headers"]["authorization"], format!("Bearer {token}"));

    // A client cannot send its own claims, on any route.
    let r = c
        .get(server.at("/open/info"))
        .header("x-wisp-jwt-claims", "eyJzdWIiOiJyb290In0")
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert!(info["headers"].get("x-wisp-jwt-claims").is_none(), "{info}");

    let ran = invocations(&server).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        hs256(&c)
    };
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"not the secret, but 32 bytes long!"),
    )
    .unwrap();
    for (token, expected) in [
        (forged, "the token's signature does not verify"),
        (with(&|c| c["exp"] = json!(now() - 300)), "the token has expired"),
        (
            with(&|c| c["nbf"] = json!(now() + 300)),
            "the token is not valid yet (`nbf`)",
        ),
        (
            with(&|c| c["aud"] = json!("mobile")),
            "the token's audience (`aud`) is not accepted here",
        ),
        (
            with(&|c| c["iss"] = json!("https://evil.example.com/")),
            "the token's issuer (`iss`) is not accepted here",
        ),
        (
            none,
            "the token is not a JWT with a supported algorithm (HS256, RS256 or ES256)",
        ),
        (
            "garbage".to_string(),
            "the token is not a JWT with a supported algorithm (HS256, RS256 or ES256)",
        ),
    ] {
        let r = get("/hs/info", Some(token)).await.unwrap();
        assert_eq!(expect_unauthorized(r, Some("invalid_token")).await, expected);
    }
    // No credentials, or another scheme: a bare challenge.
    expect_unauthorized(get("/hs/info", None).await.unwrap(), None).await;
    let r = c
        .get(server.at("/hs/info"))
        .header("authorization", "Basic YWRhOnB3")
        .send()
        .await
        .unwrap();
    expect_unauthorized(r, None).await;
    // A malformed bearer header.
    let r = c
        .get(server.at("/hs/info"))
        .header("authorization", "Bearer")
        .send()
        .await
        .unwrap();
    expect_unauthorized(r, Some("invalid_request")).await;
    // None of them reached the function.
    assert_eq!(invocations(&server).await, ran);
}

#[tokio::test]
async fn jwks_routes_take_rs256_and_es256_and_refuse_algorithm_confusion() {
    let server = server();
    deploy_kit(&server).await;
    // User routes are called without the admin key the test client sends by default.
    let c = anonymous_client();
    let get = |token: String| {
        c.get(server.at("/rs/info"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    for token in [
        signed(Algorithm::RS256, "rsa-1", &claims()),
        signed(Algorithm::ES256, "ec-1", &claims()),
    ] {
        assert_eq!(get(token).await.unwrap().status(), 200);
    }
    // HS256 "signed" with the RSA public key as the secret: the key says RS256.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(&key_file("rs256.pub.pem")),
    )
    .unwrap();
    let detail = expect_unauthorized(get(confused).await.unwrap(), Some("invalid_token")).await;
    assert_eq!(
        detail,
        "the token is signed with HS256; this route's key takes RS256"
    );
    // A kid of the set with the other key's algorithm.
    let swapped = signed(Algorithm::RS256, "ec-1", &claims());
    expect_unauthorized(get(swapped).await.unwrap(), Some("invalid_token")).await;
    let unknown = signed(Algorithm::RS256, "rsa-2", &claims());
    let detail = expect_unauthorized(get(unknown).await.unwrap(), Some("invalid_token")).await;
    assert_eq!(detail, "no key of this route matches the token's `kid`");
    // The HS256 route refuses an RS256 token, however well signed.
    let r = c
        .get(server.at("/hs/info"))
        .header(
            "authorization",
            format!("Bearer {}", signed(Algorithm::RS256, "rsa-1", &claims())),
        )
        .send()
        .await
        .unwrap();
    expect_unauthorized(r, Some("invalid_token")).await;
}

#[tokio::test]
async fn event_functions_get_the_claims_as_api_gateway_passes_them() {
    let server = server();
    let config = json!({"kind": "event", "routes": [
        {"path": "/e/:action", "auth": "jwt", "jwt": {"issuer": ISSUER, "audience": "api", "secret": SECRET}},
    ]});
    deploy_fixture(&server, "ev", "event-kit", config).await;
    let r = client()
        .get(server.at("/e/echo"))
        .header("authorization", format!("Bearer {}", hs256(&claims())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let event: Value = r.json().await.unwrap();
    let jwt = &event["requestContext"]["authorizer"]["jwt"];
    assert_eq!(jwt["claims"]["sub"], "ada");
    assert_eq!(jwt["claims"]["iss"], ISSUER);
    assert!(jwt["claims"]["exp"].is_string(), "{jwt}");
    assert_eq!(jwt["scopes"], json!(["read", "write"]));
}

#[tokio::test]
async fn secrets_are_never_shown_and_bad_configs_name_the_field() {
    let server = server();
    deploy_kit(&server).await;
    let view = get_json(&server, "/v1/functions/kit").await;
    let hs = &view["config"]["routes"][1]["jwt"];
    assert_eq!(hs["secret"], "(redacted)");
    assert!(!view.to_string().contains(SECRET));
    assert_eq!(view["config"]["routes"][2]["jwt"]["jwks"], jwks());

    let refused = |routes: Value| {
        let server = &server;
        async move {
            let config = json!({"kind": "http", "routes": routes});
            let r = wisp_test_support::deploy(
                &client(),
                server,
                "bad",
                config,
                wisp_test_support::fixture_bytes("http-kit"),
            )
            .await;
            let doc = expect_problem(r, 400, "invalid_config").await;
            doc["detail"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(
        refused(json!([{"path": "/a", "auth": "jwks"}])).await,
        "routes[0].auth: unknown value \"jwks\"; use \"public\", \"key\" or \"jwt\""
    );
    assert!(
        refused(json!(["/a", {"path": "/b", "auth": "jwt"}]))
            .await
            .starts_with("routes[1].auth: `auth = \"jwt\"` needs a `jwt` table")
    );
    assert!(
        refused(json!([{"path": "/a", "auth": "jwt", "jwt": {"issuer": ISSUER, "audience": "api", "secret": "short"}}]))
            .await
            .starts_with("routes[0].jwt.secret: the HS256 secret is 5 bytes")
    );
    assert!(
        refused(json!([{"path": "/a", "auth": "jwt", "jwt": {"issuer": ISSUER, "audience": "api", "jwks": {"keys": []}}}]))
            .await
            .starts_with("routes[0].jwt.jwks: the JWKS has no usable key")
    );
    assert!(
        refused(json!([{"path": "/a", "rate_limit": "100/x"}]))
            .await
            .starts_with("routes[0].rate_limit: invalid rate `100/x`")
    );
}

/// A key of `role` in `namespace`, from the identity API.
/// (Needs the identity layer: passes once it is merged.)
async fn make_key(server: &TestServer, namespace: &str, role: &str) -> String {
    let r = client()
        .post(server.at("/v1/keys"))
        .json(&json!({"namespace": namespace, "role": role}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "creating a key: {}", r.status());
    let key: Value = r.json().await.unwrap();
    key["token"].as_str().unwrap().to_string()
}

/// `auth = "key"`: a Wisp API key that may invoke in the function's namespace.
#[tokio::test]
async fn key_routes_take_keys_that_may_invoke_in_the_namespace() {
    let server = server();
    let config = json!({"kind": "http", "routes": [{"path": "/private/*", "auth": "key"}]});
    deploy_fixture(&server, "kit", "http-kit", config).await;
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "elsewhere"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "creating a namespace: {}", r.status());
    let invoke = make_key(&server, "default", "invoke").await;
    let read = make_key(&server, "default", "read").await;
    let other = make_key(&server, "elsewhere", "invoke").await;
    let get = |token: &str| {
        anonymous_client()
            .get(server.at("/private/info"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let r = get(&invoke).await.unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    // The key is the caller's credential: the function never sees it.
    assert!(info["headers"].get("authorization").is_none(), "{info}");

    let r = get(&read).await.unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    expect_problem(r, 403, "forbidden").await;
    for bad in [other.as_str(), "nokey.nosecret"] {
        expect_unauthorized(get(bad).await.unwrap(), Some("invalid_token")).await;
    }
    let r = anonymous_client()
        .get(server.at("/private/info"))
        .send()
        .await
        .unwrap();
    expect_unauthorized(r, None).await;
}
