//! Managing API keys: create (the secret shown once), list, revoke, and the admin key
//! of a node's first start.

use super::{Caller, secret};
use crate::{Engine, EngineError};
use wisp_core::wall::now_ms;
use wisp_core::{ErrorCode, Namespace, Role, UnixMillis};
use wisp_store::ApiKeyRecord;

/// A key just created: its record and the token carrying its secret, which nothing
/// keeps and nobody can read again.
pub struct NewKey {
    pub record: ApiKeyRecord,
    pub token: String,
    pub secret: String,
}

/// Longest name a key may carry.
const MAX_KEY_NAME: usize = 128;

impl Engine {
    /// Creates a key of `role` in `namespace` (which must exist), made by `by` (`None`:
    /// the server itself). `secret` gives the key id and secret to use (a bootstrap key
    /// from the operator) instead of fresh random ones.
    pub async fn create_key(
        &self,
        by: Option<&Caller>,
        namespace: &Namespace,
        role: Role,
        name: Option<String>,
        expires_at: Option<UnixMillis>,
        secret: Option<secret::NewSecret>,
    ) -> Result<NewKey, EngineError> {
        if !self.namespace_exists(namespace) {
            return Err(namespace_not_found(namespace));
        }
        if let Some(name) = &name
            && (name.is_empty() || name.len() > MAX_KEY_NAME || name.chars().any(char::is_control))
        {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                format!("a key's name is 1 to {MAX_KEY_NAME} characters without control characters"),
            ));
        }
        let now = now_ms();
        if expires_at.is_some_and(|at| at <= now) {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                "a key's expiry must be in the future",
            ));
        }
        let new = match secret {
            Some(given) => given,
            None => secret::generate().map_err(|e| EngineError::internal(e.to_string()))?,
        };
        let record = ApiKeyRecord {
            id: new.id.clone(),
            namespace: namespace.clone(),
            role,
            name,
            secret_hash: secret::hash(&new.secret).to_vec(),
            sealed_secret: self
                .identity
                .master
                .seal(&new.id, &new.secret)
                .map_err(|e| EngineError::internal(e.to_string()))?,
            created_at: now,
            created_by: by.map(|c| c.key_id.clone()),
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        if !self.store.create_key(&record).await? {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                format!("a key with id `{}` exists already", record.id),
            ));
        }
        self.identity.reload(self.store.as_ref()).await?;
        Ok(NewKey {
            token: new.token(),
            secret: new.secret,
            record,
        })
    }

    /// The keys of a namespace, or of every namespace; revoked ones included.
    pub async fn keys(&self, namespace: Option<&Namespace>) -> Result<Vec<ApiKeyRecord>, EngineError> {
        Ok(self.store.list_keys(namespace).await?)
    }

    /// A key by id.
    pub async fn key(&self, id: &str) -> Result<ApiKeyRecord, EngineError> {
        self.store.key(id).await?.ok_or_else(|| key_not_found(id))
    }

    /// Revokes a key: refused from now on, here at once and on other nodes within a
    /// second. Revoking a revoked key changes nothing.
    pub async fn revoke_key(&self, id: &str) -> Result<ApiKeyRecord, EngineError> {
        self.store.revoke_key(id, now_ms()).await?;
        let record = self.key(id).await?;
        self.identity.reload(self.store.as_ref()).await?;
        Ok(record)
    }

    /// Readies identity on a node's start: the `default` namespace exists, and when
    /// the store holds no key at all, an admin key of `default` is created (from
    /// `given`, a token the operator chose, else fresh) and its token returned, for the
    /// node to hand to the operator.
    pub async fn bootstrap(&self, given: Option<&str>) -> Result<Option<NewKey>, EngineError> {
        let default = Namespace::default_namespace();
        self.store
            .create_namespace(&default, &Default::default(), now_ms())
            .await?;
        self.identity.reload(self.store.as_ref()).await?;
        if !self.store.list_keys(None).await?.is_empty() {
            return Ok(None);
        }
        let secret = match given {
            None => None,
            Some(token) => {
                let (id, secret) = secret::parse_token(token).ok_or_else(|| {
                    EngineError::new(
                        ErrorCode::InvalidRequest,
                        "the bootstrap key is not shaped like a Wisp API key: `WK` and 16 of A-Z2-7, a dot, 40 of A-Za-z0-9-_",
                    )
                })?;
                Some(secret::NewSecret {
                    id: id.to_owned(),
                    secret: secret.to_owned(),
                })
            }
        };
        let key = self
            .create_key(
                None,
                &default,
                Role::Admin,
                Some("bootstrap".to_owned()),
                None,
                secret,
            )
            .await?;
        Ok(Some(key))
    }
}

pub(crate) fn namespace_not_found(namespace: &Namespace) -> EngineError {
    EngineError::new(
        ErrorCode::NamespaceNotFound,
        format!("there is no namespace `{namespace}`"),
    )
}

fn key_not_found(id: &str) -> EngineError {
    EngineError::new(ErrorCode::KeyNotFound, format!("there is no API key `{id}`"))
}
