//! Who may call a manifest's routes and how often: `auth`, the `jwt` table (its
//! HS256 secret read from the environment variable `secret_env` names, its JWKS from
//! the file `jwks` names), and `rate_limit`, `burst`, `rate_limit_by` on a route or
//! a function. Builds core's fields from them (core checks the values) and points
//! core's errors about them at the key that is wrong.

use crate::error::{ErrorKind, ManifestError};
use crate::schema::{RawFunction, RawRouteTable};
use crate::validate::{At, resolve};
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use wisp_core::rate_limit::{MAX_RATE_COUNT, RateKey};
use wisp_core::{AuthMode, ConfigField, FunctionConfig, FunctionName, JwtConfig, Route};

/// A `burst` as core's `u32`, or the range error core would give.
fn burst(
    at: &At<'_>,
    name: &FunctionName,
    field: &str,
    raw: Option<&Spanned<i128>>,
) -> Result<Option<u32>, ManifestError> {
    let Some(value) = raw else { return Ok(None) };
    u32::try_from(*value.get_ref()).map(Some).map_err(|_| {
        at.err(
            value.span(),
            ErrorKind::Invalid,
            format!(
                "function `{name}`: {field}: burst = {} is out of range: use 1 to {MAX_RATE_COUNT}",
                value.get_ref()
            ),
        )
    })
}

/// The function's own `rate_limit`, `burst` and `rate_limit_by`.
pub(crate) fn function_rate_limit(
    at: &At<'_>,
    name: &FunctionName,
    raw: &RawFunction,
    config: &mut FunctionConfig,
) -> Result<(), ManifestError> {
    config.rate_limit = raw.rate_limit.as_ref().map(|r| r.get_ref().clone());
    config.burst = burst(at, name, "burst", raw.burst.as_ref())?;
    config.rate_limit_by = raw.rate_limit_by.as_ref().map(|r| r.get_ref().clone());
    Ok(())
}

/// Route `i`'s `auth`, `jwt` and rate limit, into `route`.
pub(crate) fn route_access(
    at: &At<'_>,
    name: &FunctionName,
    i: usize,
    table: &RawRouteTable,
    route: &mut Route,
) -> Result<(), ManifestError> {
    if let Some(auth) = &table.auth {
        route.auth = AuthMode::parse(auth.get_ref());
    }
    route.rate_limit = table.rate_limit.as_ref().map(|r| r.get_ref().clone());
    route.burst = burst(at, name, &format!("routes[{i}].burst"), table.burst.as_ref())?;
    route.rate_limit_by = table.rate_limit_by.as_ref().map(|r| r.get_ref().clone());
    let Some(jwt) = &table.jwt else { return Ok(()) };
    let jwt = jwt.get_ref();
    let fail = |span: Range<usize>, key: &str, message: String| {
        at.err(
            span,
            ErrorKind::Invalid,
            format!("function `{name}`: routes[{i}].jwt.{key}: {message}"),
        )
    };
    if let Some(secret) = &jwt.secret {
        return Err(fail(
            secret.span(),
            "secret",
            "a wisp.toml is usually committed: put the secret in an environment variable and name it with `secret_env`".into(),
        ));
    }
    let secret = match &jwt.secret_env {
        None => None,
        Some(var) => Some(at.inputs.env(var.get_ref()).ok_or_else(|| {
            fail(
                var.span(),
                "secret_env",
                format!(
                    "the environment variable `{}` is not set; set it to the HS256 secret before deploying",
                    var.get_ref()
                ),
            )
        })?),
    };
    let jwks = match &jwt.jwks {
        None => None,
        Some(file) => {
            let path = resolve(&at.dir(), Path::new(file.get_ref()));
            let text = at.inputs.read(&path).map_err(|e| {
                fail(
                    file.span(),
                    "jwks",
                    format!("cannot read the JWKS file `{}`: {e}", path.display()),
                )
            })?;
            let value = serde_json::from_str(&text).map_err(|e| {
                fail(
                    file.span(),
                    "jwks",
                    format!("the JWKS file `{}` is not JSON: {e}", path.display()),
                )
            })?;
            Some(value)
        }
    };
    route.jwt = Some(JwtConfig {
        issuer: jwt.issuer.get_ref().clone(),
        audience: jwt.audience.get_ref().to_vec(),
        secret,
        jwks,
    });
    Ok(())
}

/// Where the key a core error about access is written, if it is.
pub(crate) fn span(raw: &RawFunction, field: &ConfigField) -> Option<Range<usize>> {
    let rate = |key: RateKey,
                r: Option<&Spanned<String>>,
                b: Option<&Spanned<i128>>,
                by: Option<&Spanned<String>>| {
        match key {
            RateKey::RateLimit => r.map(Spanned::span),
            RateKey::Burst => b.map(Spanned::span),
            RateKey::RateLimitBy => by.map(Spanned::span),
        }
        // A key missing its partner is pointed at through the partner.
        .or_else(|| r.or(by).map(Spanned::span))
        .or_else(|| b.map(Spanned::span))
    };
    let table = |i: usize| raw.routes.get(i).and_then(|item| item.get_ref().table());
    let item = |i: usize| raw.routes.get(i).map(Spanned::span);
    match field {
        ConfigField::Rate(key) => rate(
            *key,
            raw.rate_limit.as_ref(),
            raw.burst.as_ref(),
            raw.rate_limit_by.as_ref(),
        ),
        ConfigField::RouteRate(i, key) => {
            let t = table(*i)?;
            rate(
                *key,
                t.rate_limit.as_ref(),
                t.burst.as_ref(),
                t.rate_limit_by.as_ref(),
            )
        }
        ConfigField::RouteAuth(i) => table(*i)
            .and_then(|t| t.auth.as_ref().map(Spanned::span))
            .or_else(|| item(*i)),
        ConfigField::RouteJwt(i, key) => {
            let t = table(*i)?;
            let jwt = t.jwt.as_ref()?;
            let inner = jwt.get_ref();
            match *key {
                "issuer" => Some(inner.issuer.span()),
                "audience" => Some(inner.audience.span()),
                "secret" => inner.secret_env.as_ref().map(Spanned::span),
                "jwks" => inner.jwks.as_ref().map(Spanned::span),
                _ => None,
            }
            .or_else(|| Some(jwt.span()))
        }
        _ => None,
    }
}
