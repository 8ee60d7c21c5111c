//! A function's environment as its instances get it: the text variables of its
//! configuration as they are, and each secret reference ([`wisp_core::EnvValue::Secret`])
//! resolved when an instance starts, through the version's
//! [`SecretValues`](crate::services::SecretValues).
//!
//! Resolving at every instance start (not at load) is what lets a secret set again reach
//! the next instance without a deploy. A function without references keeps the fast path:
//! its variables are built once, at load, and shared.

use crate::services::SecretValues;
use bytes::Bytes;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use wisp_core::{EnvValue, SecretName};

/// The environment of one function version, built at load.
#[derive(Clone, Debug, Default)]
pub(crate) struct FunctionEnv {
    text: Arc<[(String, String)]>,
    secrets: Arc<[(String, SecretName)]>,
}

/// An instance cannot start: its environment refers to a secret its namespace does not
/// have (deleted after the deploy). Never started with an empty value instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "environment variable `{variable}` refers to secret `{secret}`, which does not exist in the \
     function's namespace: set it with `wisp secret set {secret}`"
)]
pub(crate) struct MissingSecret {
    pub variable: String,
    pub secret: SecretName,
}

impl MissingSecret {
    /// The line the function's log gets, so the failure shows where its author looks.
    pub fn log_line(&self) -> Bytes {
        Bytes::from(format!("wisp: the instance did not start: {self}\n"))
    }

    /// What the invocation that needed the instance fails with (`function_error`).
    pub fn into_invoke_error(self) -> crate::InvokeError {
        crate::InvokeError::Function(format!("the instance did not start: {self}"))
    }
}

impl FunctionEnv {
    pub fn new(env: &BTreeMap<String, EnvValue>) -> FunctionEnv {
        let mut text = Vec::with_capacity(env.len());
        let mut secrets = Vec::new();
        for (key, value) in env {
            match value {
                EnvValue::Text(value) => text.push((key.clone(), value.clone())),
                EnvValue::Secret { secret } => secrets.push((key.clone(), secret.clone())),
            }
        }
        FunctionEnv {
            text: text.into(),
            secrets: secrets.into(),
        }
    }

    /// The variables an instance starts with: the text ones, borrowed when there are no
    /// secret references (no allocation), else with each reference's current value.
    pub fn resolve(&self, values: &dyn SecretValues) -> Result<Cow<'_, [(String, String)]>, MissingSecret> {
        if self.secrets.is_empty() {
            return Ok(Cow::Borrowed(&self.text));
        }
        let mut env = Vec::with_capacity(self.text.len() + self.secrets.len());
        env.extend(self.text.iter().cloned());
        for (variable, secret) in self.secrets.iter() {
            let value = values.value(secret.as_str()).ok_or_else(|| MissingSecret {
                variable: variable.clone(),
                secret: secret.clone(),
            })?;
            env.push((variable.clone(), value.to_string()));
        }
        Ok(Cow::Owned(env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Values(Vec<(&'static str, &'static str)>);

    impl SecretValues for Values {
        fn value(&self, name: &str) -> Option<Arc<str>> {
            self.0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| Arc::from(*v))
        }
    }

    fn env() -> BTreeMap<String, EnvValue> {
        let mut env = BTreeMap::new();
        env.insert("PLAIN".to_owned(), EnvValue::from("text"));
        env.insert(
            "DB_PASSWORD".to_owned(),
            EnvValue::Secret {
                secret: SecretName::new("db").unwrap(),
            },
        );
        env
    }

    #[test]
    fn text_is_shared_and_secrets_resolve_at_each_call() {
        let mut plain = env();
        plain.remove("DB_PASSWORD");
        let plain = FunctionEnv::new(&plain);
        let resolved = plain.resolve(&Values(vec![])).unwrap();
        assert!(matches!(resolved, Cow::Borrowed(_)));
        assert_eq!(&*resolved, &[("PLAIN".to_owned(), "text".to_owned())]);

        let with_secret = FunctionEnv::new(&env());
        let resolved = with_secret.resolve(&Values(vec![("db", "hunter2")])).unwrap();
        assert!(resolved.contains(&("DB_PASSWORD".to_owned(), "hunter2".to_owned())));
        assert!(resolved.contains(&("PLAIN".to_owned(), "text".to_owned())));
        let rotated = with_secret.resolve(&Values(vec![("db", "rotated")])).unwrap();
        assert!(rotated.contains(&("DB_PASSWORD".to_owned(), "rotated".to_owned())));
    }

    #[test]
    fn a_missing_secret_is_an_error_never_an_empty_value() {
        let err = FunctionEnv::new(&env()).resolve(&Values(vec![])).unwrap_err();
        assert_eq!(err.variable, "DB_PASSWORD");
        let message = err.to_string();
        assert!(message.contains("secret `db`"), "{message}");
        assert!(message.contains("wisp secret set db"), "{message}");
    }
}
