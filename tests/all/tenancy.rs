//! Identity and tenancy (issue 13): who may do what in which namespace, as a generated
//! matrix over every control and Lambda endpoint, every role, own and other namespace,
//! and every kind of bad credential; a native function that calls the control API from
//! inside; the admin key of a first start; namespaces and keys from the CLI.

use crate::native::dir_with;
use crate::util::{bin, client, expect_problem, server};
use serde_json::{Value, json};
use std::time::Duration;
use wisp_core::{Permission, Role};
use wisp_test_support::{TestServer, anonymous_client, fixture_bytes, keyed_client};

/// What a request carries.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Credential {
    Key(Role),
    None,
    /// Not shaped like a key.
    Malformed,
    /// Shaped like a key, unknown to the server.
    Unknown,
    Revoked,
    Expired,
}

/// Where the request acts: the key's own namespace, or another tenant's (named with
/// `Wisp-Namespace`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Own,
    Other,
}

/// One endpoint: how to call it and what it answers when allowed.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    needs: Permission,
    /// A second permission that also allows the call (invoke keys read objects).
    or: Option<Permission>,
    /// The status when the caller may make the request, in its own namespace and in
    /// the other.
    allowed: (u16, u16),
}

fn endpoint(method: &'static str, path: &'static str, needs: Permission, allowed: u16) -> Endpoint {
    Endpoint {
        method,
        path,
        body: None,
        needs,
        or: None,
        allowed: (allowed, allowed),
    }
}

/// A read of buckets, objects or key-value stores: read keys and invoke keys may (as
/// on the S3 listener).
fn object_read(method: &'static str, path: &'static str, allowed: u16) -> Endpoint {
    Endpoint {
        or: Some(Permission::Invoke),
        ..endpoint(method, path, Permission::Read, allowed)
    }
}

/// Every control and Lambda endpoint. Each namespace holds a function `hello`, a
/// queue `jobs`, a bucket `photos` with an object `cat.txt`, a key-value store
/// `cache` with a key `k`, a topic `news` and a secret `db`; only the other namespace
/// holds `secret-fn`, a bucket `secret-bucket` (with `cat.txt`), a store `secret-kv`
/// (with `k`) and a topic `secret-topic`, so asking for them from the own namespace must
/// look exactly like asking for what does not exist.
fn endpoints() -> Vec<Endpoint> {
    use Permission::*;
    let mut list = vec![
        endpoint("GET", "/v1/functions", Read, 200),
        endpoint("GET", "/v1/functions/hello", Read, 200),
        Endpoint {
            allowed: (404, 200),
            ..endpoint("GET", "/v1/functions/secret-fn", Read, 0)
        },
        endpoint("DELETE", "/v1/functions/ghost", Deploy, 404),
        endpoint("GET", "/v1/functions/hello/logs", Read, 200),
        endpoint("GET", "/v1/functions/hello/invocations", Read, 200),
        endpoint("GET", "/v1/functions/hello/stats", Read, 200),
        Endpoint {
            allowed: (404, 200),
            ..endpoint("GET", "/v1/functions/secret-fn/stats", Read, 0)
        },
        endpoint("GET", "/v1/functions/hello/dlq", Read, 200),
        endpoint("POST", "/v1/functions/hello/dlq/redrive", Deploy, 200),
        endpoint("DELETE", "/v1/functions/hello/dlq", Deploy, 200),
        Endpoint {
            body: Some(json!({"action": "hello", "name": "Ada"})),
            ..endpoint("POST", "/v1/functions/hello/invoke", Invoke, 200)
        },
        Endpoint {
            body: Some(json!({"action": "hello", "name": "Ada"})),
            ..endpoint("POST", "/2015-03-31/functions/hello/invocations", Invoke, 200)
        },
        Endpoint {
            allowed: (404, 200),
            body: Some(json!({})),
            ..endpoint("POST", "/2015-03-31/functions/secret-fn/invocations", Invoke, 0)
        },
        Endpoint {
            body: Some(json!({"action": "hello", "name": "Ada"})),
            ..endpoint(
                "POST",
                "/2021-11-15/functions/hello/response-streaming-invocations",
                Invoke,
                200,
            )
        },
        Endpoint {
            allowed: (404, 200),
            body: Some(json!({})),
            ..endpoint(
                "POST",
                "/2021-11-15/functions/secret-fn/response-streaming-invocations",
                Invoke,
                0,
            )
        },
        endpoint("GET", "/v1/functions/hello/versions", Read, 200),
        Endpoint {
            allowed: (404, 200),
            ..endpoint("GET", "/v1/functions/secret-fn/versions", Read, 0)
        },
        endpoint("GET", "/v1/functions/hello/aliases", Read, 200),
        Endpoint {
            body: Some(json!({"version": 1})),
            ..endpoint("PUT", "/v1/functions/hello/aliases/beta", Deploy, 200)
        },
        endpoint("DELETE", "/v1/functions/hello/aliases/ghost", Deploy, 404),
        // `hello` keeps no version before 1.
        endpoint("POST", "/v1/functions/hello/rollback", Deploy, 404),
        endpoint("POST", "/v1/functions/hello/enable", Deploy, 200),
        // A JSON body where the app deploy takes multipart: past auth, refused.
        Endpoint {
            body: Some(json!({})),
            ..endpoint("PUT", "/v1/apps/shop", Deploy, 415)
        },
        endpoint("GET", "/2015-03-31/functions/", Read, 200),
        endpoint("GET", "/2015-03-31/functions/hello", Read, 200),
        Endpoint {
            allowed: (404, 200),
            ..endpoint("GET", "/2015-03-31/functions/secret-fn", Read, 0)
        },
        endpoint("GET", "/2015-03-31/functions/hello/aliases", Read, 200),
        endpoint("DELETE", "/2015-03-31/functions/ghost", Deploy, 404),
        endpoint(
            "GET",
            "/v1/invocations/0192aaaa-0000-7000-8000-000000000000",
            Read,
            404,
        ),
        endpoint("GET", "/v1/queues", Read, 200),
        endpoint("GET", "/v1/queues/jobs", Read, 200),
        Endpoint {
            body: Some(json!({})),
            ..endpoint("PUT", "/v1/queues/jobs", Deploy, 200)
        },
        endpoint("DELETE", "/v1/queues/ghost", Deploy, 404),
        Endpoint {
            body: Some(json!({"body": "hi"})),
            ..endpoint("POST", "/v1/queues/jobs/messages", Invoke, 201)
        },
        Endpoint {
            body: Some(json!({"max": 1})),
            ..endpoint("POST", "/v1/queues/jobs/receive", Deploy, 200)
        },
        Endpoint {
            body: Some(json!({"receipts": ["nope"]})),
            ..endpoint("POST", "/v1/queues/jobs/delete", Deploy, 200)
        },
        endpoint("POST", "/v1/queues/jobs/purge", Deploy, 200),
        object_read("GET", "/v1/buckets", 200),
        object_read("GET", "/v1/buckets/photos", 200),
        Endpoint {
            allowed: (404, 200),
            ..object_read("GET", "/v1/buckets/secret-bucket", 0)
        },
        object_read("GET", "/v1/buckets/photos/objects", 200),
        object_read("GET", "/v1/buckets/photos/objects/cat.txt", 200),
        object_read("HEAD", "/v1/buckets/photos/objects/cat.txt", 200),
        Endpoint {
            allowed: (404, 200),
            ..object_read("GET", "/v1/buckets/secret-bucket/objects/cat.txt", 0)
        },
        Endpoint {
            body: Some(json!("meow")),
            ..endpoint("PUT", "/v1/buckets/photos/objects/new.txt", Deploy, 200)
        },
        Endpoint {
            allowed: (404, 200),
            body: Some(json!("meow")),
            ..endpoint("PUT", "/v1/buckets/secret-bucket/objects/new.txt", Deploy, 0)
        },
        endpoint("DELETE", "/v1/buckets/photos/objects/ghost.txt", Deploy, 204),
        endpoint("PUT", "/v1/buckets/photos", Deploy, 409),
        endpoint("DELETE", "/v1/buckets/ghost-bucket", Deploy, 404),
        object_read("GET", "/v1/kv", 200),
        object_read("GET", "/v1/kv/cache", 200),
        Endpoint {
            allowed: (404, 200),
            ..object_read("GET", "/v1/kv/secret-kv", 0)
        },
        object_read("GET", "/v1/kv/cache/keys", 200),
        object_read("GET", "/v1/kv/cache/keys/k", 200),
        object_read("HEAD", "/v1/kv/cache/keys/k", 200),
        Endpoint {
            allowed: (404, 200),
            ..object_read("GET", "/v1/kv/secret-kv/keys/k", 0)
        },
        Endpoint {
            body: Some(json!("v")),
            ..endpoint("PUT", "/v1/kv/cache/keys/new", Deploy, 200)
        },
        Endpoint {
            allowed: (404, 200),
            body: Some(json!("v")),
            ..endpoint("PUT", "/v1/kv/secret-kv/keys/new", Deploy, 0)
        },
        endpoint("DELETE", "/v1/kv/cache/keys/ghost", Deploy, 404),
        endpoint("POST", "/v1/kv/cache/increment/n", Deploy, 200),
        Endpoint {
            body: Some(json!({"get": ["k"]})),
            ..endpoint("POST", "/v1/kv/cache/batch", Deploy, 200)
        },
        endpoint("PUT", "/v1/kv/cache", Deploy, 409),
        endpoint("DELETE", "/v1/kv/ghost-kv", Deploy, 404),
        endpoint("GET", "/v1/topics", Read, 200),
        endpoint("GET", "/v1/topics/news", Read, 200),
        Endpoint {
            allowed: (404, 200),
            ..endpoint("GET", "/v1/topics/secret-topic", Read, 0)
        },
        endpoint("GET", "/v1/topics/news/subscriptions", Read, 200),
        endpoint("PUT", "/v1/topics/news", Deploy, 200),
        Endpoint {
            body: Some(json!({"message": "hi"})),
            ..endpoint("POST", "/v1/topics/news/messages", Invoke, 201)
        },
        Endpoint {
            allowed: (404, 201),
            body: Some(json!({"message": "hi"})),
            ..endpoint("POST", "/v1/topics/secret-topic/messages", Invoke, 0)
        },
        endpoint("DELETE", "/v1/topics/ghost-topic", Deploy, 404),
        endpoint("GET", "/v1/breakers", Read, 200),
        // No record carries the trace (one that does: `trace::a_trace_reads_as_a_tree…`).
        endpoint("GET", "/v1/traces/1-5759e988-bd862e3fe1be46a994272793", Read, 404),
        endpoint("GET", "/v1/traces/not-a-root", Read, 400),
        endpoint("GET", "/v1/secrets", Read, 200),
        Endpoint {
            body: Some(json!("rotated")),
            ..endpoint("PUT", "/v1/secrets/db", Deploy, 200)
        },
        endpoint("DELETE", "/v1/secrets/ghost-secret", Deploy, 404),
        endpoint("GET", "/v1/alarms", Read, 200),
        endpoint("GET", "/v1/alarms/errors", Read, 200),
        Endpoint {
            allowed: (404, 200),
            ..endpoint("GET", "/v1/alarms/secret-alarm", Read, 0)
        },
        Endpoint {
            body: Some(json!({"metric": "errors", "function": "hello", "threshold": 1})),
            ..endpoint("PUT", "/v1/alarms/errors", Deploy, 200)
        },
        endpoint("DELETE", "/v1/alarms/ghost-alarm", Deploy, 404),
        endpoint("GET", "/v1/audit", Deploy, 200),
        endpoint("GET", "/v1/usage", Read, 200),
        // Every role reads its namespace's metrics (an admin's, every namespace's).
        endpoint("GET", "/metrics", Read, 200),
        endpoint("GET", "/v1/namespaces", Admin, 200),
        endpoint("GET", "/v1/namespaces/alpha", Admin, 200),
        Endpoint {
            body: Some(json!({"name": "alpha"})),
            ..endpoint("POST", "/v1/namespaces", Admin, 409)
        },
        Endpoint {
            body: Some(json!({})),
            ..endpoint("PATCH", "/v1/namespaces/alpha", Admin, 200)
        },
        endpoint("DELETE", "/v1/namespaces/ghost", Admin, 404),
        endpoint("GET", "/v1/keys", Admin, 200),
        endpoint("GET", "/v1/cluster", Admin, 200),
        endpoint("GET", "/v1/keys/WKAAAAAAAAAAAAAAAA", Admin, 404),
        Endpoint {
            body: Some(json!({"role": "root"})),
            ..endpoint("POST", "/v1/keys", Admin, 400)
        },
        endpoint("DELETE", "/v1/keys/WKAAAAAAAAAAAAAAAA", Admin, 404),
        // Last: an allowed call deletes it.
        Endpoint {
            allowed: (404, 204),
            ..endpoint("DELETE", "/v1/functions/secret-fn", Deploy, 0)
        },
    ];
    // `/v1/health` is the one public path.
    list.push(Endpoint {
        needs: Read,
        ..endpoint("GET", "/v1/health", Read, 200)
    });
    list
}

/// The status the matrix expects.
fn expected(e: &Endpoint, credential: Credential, target: Target) -> u16 {
    if e.path == "/v1/health" {
        return 200;
    }
    let Credential::Key(role) = credential else {
        return 401;
    };
    if target == Target::Other && role != Role::Admin {
        return 404; // another tenant's namespace is answered as one that does not exist
    }
    if !role.allows(e.needs) && !e.or.is_some_and(|p| role.allows(p)) {
        return 403;
    }
    match target {
        Target::Own => e.allowed.0,
        Target::Other => e.allowed.1,
    }
}

async fn deploy_in(server: &TestServer, namespace: &str, name: &str) {
    let form = reqwest::multipart::Form::new()
        .part(
            "config",
            reqwest::multipart::Part::bytes(br#"{"kind":"event"}"#.to_vec()),
        )
        .part(
            "code",
            reqwest::multipart::Part::bytes(fixture_bytes("event-kit")).file_name("code.wasm"),
        );
    let r = client()
        .put(server.at(&format!("/v1/functions/{name}")))
        .header("wisp-namespace", namespace)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(
        [200, 201].contains(&r.status().as_u16()),
        "{}",
        r.text().await.unwrap()
    );
}

pub(crate) async fn create_key(
    server: &TestServer,
    namespace: &str,
    role: &str,
    expires_in: Option<&str>,
) -> String {
    let mut body = json!({"namespace": namespace, "role": role});
    if let Some(e) = expires_in {
        body["expires_in"] = json!(e);
    }
    let r = client()
        .post(server.at("/v1/keys"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key: Value = r.json().await.unwrap();
    assert_eq!(key["secret"].as_str().unwrap().len(), 40);
    key["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_tenant_matrix_holds_for_every_endpoint_role_namespace_and_credential() {
    let server = server();
    for ns in ["alpha", "beta"] {
        let r = client()
            .post(server.at("/v1/namespaces"))
            .json(&json!({ "name": ns }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        deploy_in(&server, ns, "hello").await;
        let r = client()
            .put(server.at("/v1/queues/jobs"))
            .header("wisp-namespace", ns)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let buckets: &[&str] = if ns == "beta" {
            &["photos", "secret-bucket"]
        } else {
            &["photos"]
        };
        for bucket in buckets {
            let r = client()
                .put(server.at(&format!("/v1/buckets/{bucket}")))
                .header("wisp-namespace", ns)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let r = client()
                .put(server.at(&format!("/v1/buckets/{bucket}/objects/cat.txt")))
                .header("wisp-namespace", ns)
                .body("meow")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let stores: &[&str] = if ns == "beta" {
            &["cache", "secret-kv"]
        } else {
            &["cache"]
        };
        let own: &[&str] = if ns == "beta" {
            &["news", "secret-topic"]
        } else {
            &["news"]
        };
        for topic in own {
            let r = client()
                .put(server.at(&format!("/v1/topics/{topic}")))
                .header("wisp-namespace", ns)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let r = client()
            .put(server.at("/v1/secrets/db"))
            .header("wisp-namespace", ns)
            .body("s3cr3t")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let alarms: &[&str] = if ns == "beta" {
            &["errors", "secret-alarm"]
        } else {
            &["errors"]
        };
        for alarm in alarms {
            let r = client()
                .put(server.at(&format!("/v1/alarms/{alarm}")))
                .header("wisp-namespace", ns)
                .json(&json!({"metric": "errors", "function": "hello", "threshold": 1}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        for store in stores {
            let r = client()
                .put(server.at(&format!("/v1/kv/{store}")))
                .header("wisp-namespace", ns)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let r = client()
                .put(server.at(&format!("/v1/kv/{store}/keys/k")))
                .header("wisp-namespace", ns)
                .body("v")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let mut tokens = Vec::new();
    for role in Role::ALL {
        // The admin key acts in `alpha` by naming it; the others are alpha's own.
        let token = create_key(&server, "alpha", role.as_str(), None).await;
        tokens.push((Credential::Key(role), token));
    }
    let revoked = create_key(&server, "alpha", "deploy", None).await;
    let id = revoked.split_once('.').unwrap().0;
    let r = client()
        .delete(server.at(&format!("/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let expired = create_key(&server, "alpha", "deploy", Some("1s")).await;
    tokens.push((Credential::Revoked, revoked));
    tokens.push((Credential::Expired, expired));
    tokens.push((Credential::Malformed, "not-a-key".into()));
    tokens.push((
        Credential::Unknown,
        "WKAAAAAAAAAAAAAAAA.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
    ));
    tokens.push((Credential::None, String::new()));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut checked = 0;
    let mut wrong = Vec::new();
    for (credential, token) in &tokens {
        let http = match credential {
            Credential::None => anonymous_client(),
            _ => keyed_client(token),
        };
        for target in [Target::Own, Target::Other] {
            // `secret-fn` exists in the other namespace only; made anew for each pass,
            // as an allowed DELETE removes it.
            deploy_in(&server, "beta", "secret-fn").await;
            for e in endpoints() {
                let mut request = http.request(e.method.parse().unwrap(), server.at(e.path));
                let namespace = match (target, credential) {
                    (Target::Other, _) => Some("beta"),
                    // The admin key's own namespace is `alpha` in this matrix.
                    (Target::Own, Credential::Key(Role::Admin)) => Some("alpha"),
                    (Target::Own, _) => None,
                };
                if let Some(ns) = namespace {
                    request = request.header("wisp-namespace", ns);
                }
                if let Some(body) = &e.body {
                    request = request.json(body);
                }
                let response = request.send().await.unwrap();
                let got = response.status().as_u16();
                let want = expected(&e, *credential, target);
                if got != want {
                    let body = response.text().await.unwrap_or_default();
                    wrong.push(format!(
                        "{credential:?} {target:?} {} {}: got {got}, want {want}: {body}",
                        e.method, e.path
                    ));
                } else if got == 401 {
                    let challenge = response.headers().get("www-authenticate");
                    assert_eq!(
                        challenge.unwrap(),
                        "Bearer realm=\"wisp\"",
                        "{} {}",
                        e.method,
                        e.path
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(checked, tokens.len() * 2 * endpoints().len());
}

#[tokio::test]
async fn malformed_credentials_and_bad_input_get_specific_errors() {
    let server = server();
    let cases = [
        ("Bearer", "not a scheme"),
        ("Basic dXNlcjpwYXNz", "not a scheme Wisp takes"),
        ("Bearer WKAAAAAAAAAAAAAAAA", "not a Wisp API key"),
        ("Bearer WKAAAAAAAAAAAAAAAA.short", "not a Wisp API key"),
        ("AWS4-HMAC-SHA256 Credential=x", "Lambda-compatible paths only"),
    ];
    for (header, says) in cases {
        let r = anonymous_client()
            .get(server.at("/v1/functions"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        let doc = expect_problem(r, 401, "unauthorized").await;
        assert!(doc["detail"].as_str().unwrap().contains(says), "{header}: {doc}");
    }
    // A refusal that leaves the request's body unread closes the connection, and says so,
    // so a keep-alive client does not send its next request into a closing connection.
    let r = anonymous_client()
        .post(server.at("/v1/functions/x/invoke"))
        .body(vec![b'x'; 300_000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close")
    );
    expect_problem(r, 401, "unauthorized").await;
    // The same on a user route whose auth refuses the request before its body is read.
    let config = json!({"kind": "http", "routes": [{"path": "/private", "auth": "key"}]});
    crate::util::deploy_fixture(&server, "private", "http-kit", config).await;
    let r = anonymous_client()
        .post(server.at("/private"))
        .body(vec![b'x'; 300_000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close")
    );
    expect_problem(r, 401, "unauthorized").await;
    let r = client().get(server.at("/v1/functions")).send().await.unwrap();
    assert_eq!(
        r.headers().get("connection"),
        None,
        "a request without a body keeps it open"
    );
    let r = client()
        .get(server.at("/v1/functions"))
        .header("wisp-namespace", "Not_A_Name")
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_name").await;
    let r = client()
        .post(server.at("/v1/keys"))
        .json(&json!({"role": "root"}))
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("use admin, deploy, invoke or read"),
        "{doc}"
    );
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "default"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 409, "namespace_exists").await;
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "x", "colour": "red"}))
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 400, "invalid_request").await;
    assert!(doc["detail"].as_str().unwrap().contains("colour"), "{doc}");
    let r = client()
        .post(server.at("/v1/keys"))
        .json(&json!({"role": "read", "expires_in": "soon"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;
    let r = client()
        .delete(server.at("/v1/namespaces/default"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 400, "invalid_request").await;
}

#[tokio::test]
async fn names_are_unique_per_namespace_and_deleting_one_is_refused_while_it_holds_anything() {
    let server = server();
    let r = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({"name": "team", "max_concurrency": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    deploy_in(&server, "default", "hello").await;
    deploy_in(&server, "team", "hello").await; // the same name in another namespace
    let team_key = create_key(&server, "team", "deploy", None).await;
    let team = keyed_client(&team_key);
    let list: Value = team
        .get(server.at("/v1/functions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["functions"].as_array().unwrap().len(), 1);
    assert_eq!(list["functions"][0]["namespace"], "team");
    let r = client()
        .delete(server.at("/v1/namespaces/team"))
        .send()
        .await
        .unwrap();
    let doc = expect_problem(r, 409, "namespace_not_empty").await;
    assert!(doc["detail"].as_str().unwrap().contains("1 function(s)"), "{doc}");
    let r = client()
        .delete(server.at("/v1/namespaces/team?force=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Its keys went with it; `default`'s function of the same name stays.
    let r = team.get(server.at("/v1/functions")).send().await.unwrap();
    expect_problem(r, 401, "unauthorized").await;
    let r = client()
        .get(server.at("/v1/functions/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The audit trail outlives the namespace.
    let audit: Value = client()
        .get(server.at("/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["namespace"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    for want in [
        ("team", "namespace.delete"),
        ("team", "key.create"),
        ("team", "function.deploy"),
        ("default", "function.deploy"),
        ("team", "namespace.create"),
    ] {
        assert!(actions.contains(&want), "{want:?} missing from {actions:?}");
    }
    assert!(audit["entries"][0]["key_id"].as_str().unwrap().starts_with("WK"));
    assert_eq!(audit["entries"][0]["source"], "127.0.0.1");
}

/// A native function runs on the host's network: it can reach the control API on
/// 127.0.0.1, and must be refused there like any caller without a key.
#[tokio::test]
async fn a_native_function_cannot_deploy_or_list_through_the_control_api() {
    let server = server();
    let app = br#"
import json, urllib.request, urllib.error

def call(method, url, data=None):
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return "unreachable"

def handler(event, context):
    base = event["base"]
    out = {
        "list": call("GET", base + "/v1/functions"),
        "delete": call("DELETE", base + "/v1/functions/victim"),
        "deploy": call("PUT", base + "/v1/functions/evil", b"x"),
        "keys": call("GET", base + "/v1/keys"),
    }
    # Its own credentials (for the S3 listener) must not open the Lambda API either.
    import os, boto3
    out["credential"] = os.environ.get("AWS_ACCESS_KEY_ID", "")[:2]
    try:
        boto3.client("lambda", endpoint_url=base).list_functions()
        out["lambda"] = 200
    except Exception as e:
        out["lambda"] = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", str(e))
    try:
        open(event["admin_key"]).read()
        out["read_admin_key"] = True
    except OSError:
        out["read_admin_key"] = False
    return out
"#;
    let dir = dir_with(&[("app.py", app, false)]);
    let zip = crate::native::zip_dir(dir.path());
    let boto3 = crate::util::python_package("boto3==1.44.5");
    let config = json!({"kind": "event", "runtime": "python", "handler": "app.handler",
                        "env": {"PYTHONPATH": boto3.to_str().unwrap()}});
    let r = wisp_test_support::deploy(&client(), &server, "prober", config, zip).await;
    assert_eq!(r.status(), 201);
    crate::util::deploy_fixture(&server, "victim", "event-kit", json!({"kind": "event"})).await;
    let admin_key = server.data_dir.join("admin.key");
    let out = crate::native::invoke_ok(
        &server,
        "prober",
        json!({"base": server.url, "admin_key": admin_key}),
    )
    .await;
    // As root each instance has a network of its own: the control API is out of reach
    // (the proxy it is given refuses what it is not granted). Otherwise the API itself
    // refuses: the function holds no key.
    let refused = if crate::native::is_root() {
        json!(403)
    } else {
        json!(401)
    };
    for call in ["list", "delete", "deploy", "keys"] {
        assert_eq!(out[call], refused, "{call}: {out}");
    }
    assert_eq!(
        out["credential"], "WF",
        "native functions get a credential: {out}"
    );
    assert!([401, 403].contains(&out["lambda"].as_u64().unwrap_or(0)), "{out}");
    if crate::native::is_root() {
        // Run as `nobody`, the function cannot read the key file (mode 0600).
        assert_eq!(out["read_admin_key"], false, "{out}");
    }
    let r = client()
        .get(server.at("/v1/functions/victim"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A first start makes its own admin key, readable by its owner alone, which the CLI
/// on the same machine finds through the data directory; revoked keys and keys of
/// another namespace are refused from the CLI with what to do.
#[tokio::test]
async fn the_first_start_writes_an_admin_key_the_cli_finds() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::serve_unseeded(bin());
    let path = server.data_dir.join("admin.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(token.starts_with("WK") && token.contains('.'), "{token}");
    assert!(
        !server.stderr().contains(token.split_once('.').unwrap().1),
        "the secret was logged"
    );
    let run = |args: &[&str], key: Option<&str>| {
        let mut command = server.cli(bin());
        command.args(args);
        if let Some(key) = key {
            command.env("WISP_KEY", key);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, _, stderr) = run(&["ns", "create", "team"], None);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, created, stderr) = run(&["keys", "create", "--namespace", "team", "--role", "read"], None);
    assert_eq!(code, Some(0), "{stderr}");
    let read_key = created.trim().to_string();
    assert!(stderr.contains("shown once"), "{stderr}");
    let (code, listed, _) = run(&["keys", "ls"], None);
    assert_eq!(code, Some(0));
    assert!(listed.contains(read_key.split_once('.').unwrap().0), "{listed}");
    assert!(
        !listed.contains(read_key.split_once('.').unwrap().1),
        "keys ls shows a secret"
    );
    let (code, _, stderr) = run(&["ls"], Some(&read_key));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run(&["rm", "anything"], Some(&read_key));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("forbidden"), "{stderr}");
    let (code, _, stderr) = run(&["ls", "--namespace", "default"], Some(&read_key));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("namespace_not_found"), "{stderr}");
    let (code, _, stderr) = run(&["keys", "revoke", read_key.split_once('.').unwrap().0], None);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run(&["ls"], Some(&read_key));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("was revoked"), "{stderr}");
    let (code, _, stderr) = run(&["ns", "rm", "team"], None);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, audit, _) = run(&["audit"], None);
    assert_eq!(code, Some(0));
    for action in ["namespace.create", "key.create", "key.revoke", "namespace.delete"] {
        assert!(audit.contains(action), "{audit}");
    }
}
