//! Who may call the S3 API: [`Keys`] gives `s3s` the secret of the key a request is
//! signed with (people's `WK…` keys and functions' `WF…` credentials), and [`Roles`]
//! checks, once per request and before its body is read, that the key's role allows
//! the operation. The caller it finds is left in the request's extensions for the
//! operation ([`caller`]), with the invocation a wasm guest's request comes from (what
//! its writes carry: [`write_cause`]).

use crate::platform::PlatformCall;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{Credentials, S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};
use std::sync::Arc;
use wisp_core::{BucketName, ErrorCode, Permission, Role};
use wisp_engine::identity::function_credentials::is_function_credential;
use wisp_engine::{CallFrom, Caller, Cause, Engine, EngineError};

/// The secrets SigV4 signatures are checked with.
pub(super) struct Keys {
    pub(super) engine: Arc<Engine>,
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.engine.service_signing_secret(access_key) {
            Ok((_, secret)) => Ok(SecretKey::from(secret)),
            Err(e) => Err(refusal(e)),
        }
    }
}

/// The role check.
pub(super) struct Roles {
    pub(super) engine: Arc<Engine>,
}

#[async_trait::async_trait]
impl S3Access for Roles {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let platform = cx.extensions_mut().remove::<PlatformCall>();
        let (caller, from) = match (cx.credentials(), platform) {
            (Some(credentials), _) => (self.caller(credentials)?, None),
            // A wasm guest's request to the platform address: its function's identity,
            // from the invocation making it.
            (None, Some(call)) => (call.caller, Some(call.from)),
            (None, None) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::AccessDenied,
                    "anonymous requests are not allowed: sign the request (AWS Signature V4) with a Wisp key's id and secret",
                ));
            }
        };
        let operation = cx.s3_op().name();
        let needs = permission(operation);
        if !allows(caller.role, needs) {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                format!(
                    "key `{}` has the role `{}`, which may not call {operation}: {}",
                    caller.key_id,
                    caller.role,
                    match needs {
                        Needs::Read => "reading takes a key with the role read, invoke, deploy or admin",
                        Needs::Deploy =>
                            "changing buckets and objects takes a key with the role deploy or admin",
                    }
                ),
            ));
        }
        if caller.grants.is_some() {
            check_grants(&caller, operation, needs, cx.s3_path(), cx.headers())?;
        }
        cx.extensions_mut().insert(caller);
        if let Some(from) = from {
            cx.extensions_mut().insert(from);
        }
        Ok(())
    }
}

/// A function's credential reaches only the buckets its version is granted, with the
/// access each grant names; it never changes a bucket itself (create, delete, its
/// notification rules). Listing buckets is filtered by the operation instead.
fn check_grants(
    caller: &Caller,
    operation: &str,
    needs: Needs,
    path: &S3Path,
    headers: &http::HeaderMap,
) -> S3Result<()> {
    let denied = |e: EngineError| S3Error::with_message(S3ErrorCode::AccessDenied, e.detail);
    let bucket = match path {
        S3Path::Root => return Ok(()),
        S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket,
    };
    let is_object = matches!(path, S3Path::Object { .. });
    // On a bucket's own path, every change but DeleteObjects (a batch of object
    // deletes) changes the bucket.
    if !is_object && needs == Needs::Deploy && operation != "DeleteObjects" {
        return Err(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            format!(
                "a function may not call {operation}: buckets are made and configured by people (wisp.toml or `wisp bucket`)"
            ),
        ));
    }
    let check = |name: &str, write: bool| -> S3Result<()> {
        match BucketName::new(name) {
            Ok(name) => caller.check_bucket_grant(&name, write).map_err(denied),
            // Not a bucket that can exist: the operation answers for it.
            Err(_) => Ok(()),
        }
    };
    check(bucket, needs == Needs::Deploy)?;
    // CopyObject and UploadPartCopy read their source: that bucket needs a read grant.
    if let Some(source) = headers.get("x-amz-copy-source").and_then(|v| v.to_str().ok()) {
        let source = source.trim_start_matches('/');
        let source_bucket = source.split('/').next().unwrap_or(source);
        check(source_bucket, false)?;
    }
    Ok(())
}

impl Roles {
    /// The caller whose key signed the request (the signature checked out already).
    /// A person's key is found by its secret's hash rather than by unsealing its
    /// secret a second time; a function's credential is looked up (nothing sealed).
    fn caller(&self, credentials: &Credentials) -> S3Result<Caller> {
        let id = credentials.access_key.as_str();
        if !is_function_credential(id) {
            let token = format!("{id}.{}", credentials.secret_key.expose());
            if let Ok(caller) = self.engine.authenticate(&token) {
                return Ok(caller);
            }
        }
        self.engine
            .service_signing_secret(id)
            .map(|(caller, _)| caller)
            .map_err(refusal)
    }
}

/// What an operation needs of the caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    /// Reading: a role that may read or invoke.
    Read,
    /// Changing anything.
    Deploy,
}

/// What `operation` (s3s's name for it: `GetObject`, `ListObjectsV2`, …) needs.
fn permission(operation: &str) -> Needs {
    if ["Get", "Head", "List"].iter().any(|p| operation.starts_with(p)) {
        Needs::Read
    } else {
        Needs::Deploy
    }
}

/// Whether `role` may do what an operation `needs`.
fn allows(role: Role, needs: Needs) -> bool {
    match needs {
        Needs::Read => role.allows(Permission::Read) || role.allows(Permission::Invoke),
        Needs::Deploy => role.allows(Permission::Deploy),
    }
}

/// A key the engine refused: unknown, revoked and expired keys are S3's
/// `InvalidAccessKeyId`; anything else failed inside Wisp.
fn refusal(e: EngineError) -> S3Error {
    if e.code == ErrorCode::Unauthorized {
        return S3Error::with_message(S3ErrorCode::InvalidAccessKeyId, e.detail);
    }
    tracing::error!(
        "s3: cannot look up a key: {} ({})",
        e.detail,
        e.cause.as_deref().unwrap_or("no cause")
    );
    super::convert::internal_error()
}

/// The caller the access check found for this request.
pub(super) fn caller<T>(req: &S3Request<T>) -> S3Result<Caller> {
    req.extensions.get::<Caller>().cloned().ok_or_else(|| {
        // Every request passes the access check, which leaves the caller: this is a bug.
        tracing::error!("s3: a request reached its operation without a caller");
        super::convert::internal_error()
    })
}

/// What a write by `caller` gives the events it causes (`Engine::write_cause`): a wasm
/// guest's invocation, else the one the request's `X-Amzn-Trace-Id` names (the AWS SDKs
/// send it from inside a function).
pub(super) fn write_cause<T>(engine: &Engine, req: &S3Request<T>, caller: &Caller) -> Cause {
    let trace = req.headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok());
    engine.write_cause(caller, req.extensions.get::<CallFrom>(), trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_need_their_roles() {
        for op in [
            "GetObject",
            "HeadObject",
            "HeadBucket",
            "ListBuckets",
            "ListObjects",
            "ListObjectsV2",
            "ListParts",
            "ListMultipartUploads",
            "GetBucketLocation",
            "GetBucketNotificationConfiguration",
        ] {
            assert_eq!(permission(op), Needs::Read, "{op}");
        }
        for op in [
            "PutObject",
            "CopyObject",
            "DeleteObject",
            "DeleteObjects",
            "CreateBucket",
            "DeleteBucket",
            "CreateMultipartUpload",
            "UploadPart",
            "UploadPartCopy",
            "CompleteMultipartUpload",
            "AbortMultipartUpload",
            "PutBucketNotificationConfiguration",
            "PostObject",
            "PutBucketPolicy",
        ] {
            assert_eq!(permission(op), Needs::Deploy, "{op}");
        }
        for role in Role::ALL {
            assert!(allows(role, Needs::Read), "{role}");
        }
        assert!(allows(Role::Admin, Needs::Deploy));
        assert!(allows(Role::Deploy, Needs::Deploy));
        assert!(!allows(Role::Invoke, Needs::Deploy));
        assert!(!allows(Role::Read, Needs::Deploy));
    }
}
