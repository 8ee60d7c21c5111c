//! `PutBucketNotificationConfiguration` and `GetBucketNotificationConfiguration`: a
//! bucket's `LambdaFunctionConfiguration`s as the engine's [`NotificationRule`]s — the
//! function named bare or by its Lambda ARN, S3's event names, and the key filter's
//! `prefix` and `suffix` rules. Topics, queues and EventBridge are not Wisp's.

use super::REGION;
use super::auth::caller;
use super::convert::{bucket, error, invalid_argument, not_implemented};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use wisp_core::{EventPattern, FunctionName, NotificationRule};
use wisp_engine::Engine;

/// The account in the ARNs Wisp answers with (it has no accounts).
const ACCOUNT: &str = "000000000000";

pub(super) async fn put(
    engine: &Engine,
    req: S3Request<PutBucketNotificationConfigurationInput>,
) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let name = bucket(&input.bucket)?;
    let rules = rules(input.notification_configuration)?;
    engine
        .set_bucket_notifications(&caller.namespace, &name, rules)
        .await
        .map_err(error)?;
    Ok(S3Response::new(
        PutBucketNotificationConfigurationOutput::default(),
    ))
}

pub(super) async fn get(
    engine: &Engine,
    req: S3Request<GetBucketNotificationConfigurationInput>,
) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
    let caller = caller(&req)?;
    let name = bucket(&req.input.bucket)?;
    let record = engine.bucket(&caller.namespace, &name).await.map_err(error)?;
    let configurations: Vec<LambdaFunctionConfiguration> =
        record.notifications.iter().map(configuration).collect();
    Ok(S3Response::new(GetBucketNotificationConfigurationOutput {
        lambda_function_configurations: (!configurations.is_empty()).then_some(configurations),
        ..GetBucketNotificationConfigurationOutput::default()
    }))
}

/// The rules a configuration sets (all of them replace the bucket's).
fn rules(config: NotificationConfiguration) -> S3Result<Vec<NotificationRule>> {
    let unsupported = [
        (
            "TopicConfiguration",
            config
                .topic_configurations
                .as_ref()
                .is_some_and(|c| !c.is_empty()),
        ),
        (
            "QueueConfiguration",
            config
                .queue_configurations
                .as_ref()
                .is_some_and(|c| !c.is_empty()),
        ),
        (
            "EventBridgeConfiguration",
            config.event_bridge_configuration.is_some(),
        ),
    ];
    if let Some((what, _)) = unsupported.iter().find(|(_, given)| *given) {
        return Err(not_implemented(format!(
            "{what} is not supported: bucket notifications invoke Wisp functions (LambdaFunctionConfiguration)"
        )));
    }
    let configurations = config.lambda_function_configurations.unwrap_or_default();
    let given: Vec<String> = configurations.iter().filter_map(|c| c.id.clone()).collect();
    let mut rules: Vec<NotificationRule> = Vec::with_capacity(configurations.len());
    let mut generated = 0;
    for c in configurations {
        let id = match c.id {
            Some(id) if !id.is_empty() => id,
            _ => loop {
                generated += 1;
                let id = format!("notification-{generated}");
                if !given.contains(&id) {
                    break id;
                }
            },
        };
        if rules.iter().any(|r| r.id == id) {
            return Err(invalid_argument(format!(
                "two configurations have the id `{id}`: ids must be unique"
            )));
        }
        let function = function(&c.lambda_function_arn)?;
        let events = c
            .events
            .iter()
            .map(|e| EventPattern::new(e.as_ref()).map_err(invalid_argument))
            .collect::<S3Result<Vec<_>>>()?;
        let (prefix, suffix) = filter(c.filter)?;
        rules.push(NotificationRule {
            id,
            function,
            events,
            prefix,
            suffix,
        });
    }
    Ok(rules)
}

/// The function a configuration names: `NAME` or
/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME` (no qualifier: notifications
/// invoke the `live` alias).
fn function(text: &str) -> S3Result<FunctionName> {
    let parts: Vec<&str> = text.split(':').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        ["arn", _, "lambda", _, _, "function", name] => *name,
        ["arn", _, "lambda", _, _, "function", _, qualifier] => {
            return Err(invalid_argument(format!(
                "the function ARN `{text}` names the qualifier `{qualifier}`: a notification invokes a \
                 function's `live` alias, so name the function alone"
            )));
        }
        _ => {
            return Err(invalid_argument(format!(
                "`{text}` is not a function name or ARN: use NAME or arn:aws:lambda:REGION:ACCOUNT:function:NAME"
            )));
        }
    };
    FunctionName::new(name).map_err(|e| invalid_argument(format!("invalid function name in `{text}`: {e}")))
}

/// The key filter's prefix and suffix (each at most once; names in any case).
fn filter(filter: Option<NotificationConfigurationFilter>) -> S3Result<(String, String)> {
    let rules = filter
        .and_then(|f| f.key)
        .and_then(|k| k.filter_rules)
        .unwrap_or_default();
    let (mut prefix, mut suffix) = (None, None);
    for rule in rules {
        let name = rule
            .name
            .as_ref()
            .map(|n| n.as_str().to_ascii_lowercase())
            .unwrap_or_default();
        let slot = match name.as_str() {
            "prefix" => &mut prefix,
            "suffix" => &mut suffix,
            other => {
                return Err(invalid_argument(format!(
                    "filter rule name `{other}` is not valid: use prefix or suffix"
                )));
            }
        };
        if slot.is_some() {
            return Err(invalid_argument(format!(
                "Cannot specify more than one {name} rule in a filter."
            )));
        }
        *slot = Some(rule.value.unwrap_or_default());
    }
    Ok((prefix.unwrap_or_default(), suffix.unwrap_or_default()))
}

/// A rule as S3 answers it.
fn configuration(rule: &NotificationRule) -> LambdaFunctionConfiguration {
    let mut filter_rules = Vec::new();
    for (name, value) in [
        (FilterRuleName::PREFIX, &rule.prefix),
        (FilterRuleName::SUFFIX, &rule.suffix),
    ] {
        if !value.is_empty() {
            filter_rules.push(FilterRule {
                name: Some(FilterRuleName::from_static(name)),
                value: Some(value.clone()),
            });
        }
    }
    LambdaFunctionConfiguration {
        events: rule
            .events
            .iter()
            .map(|e| Event::from(format!("s3:{}", e.as_str())))
            .collect(),
        filter: (!filter_rules.is_empty()).then_some(NotificationConfigurationFilter {
            key: Some(S3KeyFilter {
                filter_rules: Some(filter_rules),
            }),
        }),
        id: Some(rule.id.clone()),
        lambda_function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}", rule.function),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lambda(
        id: Option<&str>,
        arn: &str,
        events: &[&str],
        rules: &[(&str, &str)],
    ) -> LambdaFunctionConfiguration {
        LambdaFunctionConfiguration {
            events: events.iter().map(|e| Event::from(e.to_string())).collect(),
            filter: (!rules.is_empty()).then(|| NotificationConfigurationFilter {
                key: Some(S3KeyFilter {
                    filter_rules: Some(
                        rules
                            .iter()
                            .map(|(n, v)| FilterRule {
                                name: Some(FilterRuleName::from(n.to_string())),
                                value: Some(v.to_string()),
                            })
                            .collect(),
                    ),
                }),
            }),
            id: id.map(str::to_string),
            lambda_function_arn: arn.to_string(),
        }
    }

    fn config(lambdas: Vec<LambdaFunctionConfiguration>) -> NotificationConfiguration {
        NotificationConfiguration {
            lambda_function_configurations: Some(lambdas),
            ..NotificationConfiguration::default()
        }
    }

    #[test]
    fn lambda_configurations_become_rules_and_back() {
        let rules = rules(config(vec![
            lambda(
                Some("thumbs"),
                "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer",
                &["s3:ObjectCreated:*"],
                &[("Prefix", "in/"), ("suffix", ".jpg")],
            ),
            lambda(
                None,
                "cleanup",
                &["s3:ObjectRemoved:Delete", "ObjectCreated:Copy"],
                &[],
            ),
        ]))
        .unwrap_or_default();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].id, "thumbs");
        assert_eq!(rules[0].function.as_str(), "thumbnailer");
        assert_eq!(
            (rules[0].prefix.as_str(), rules[0].suffix.as_str()),
            ("in/", ".jpg")
        );
        assert_eq!(rules[1].id, "notification-1");
        assert_eq!(rules[1].events.len(), 2);
        let back = configuration(&rules[0]);
        assert_eq!(
            back.lambda_function_arn,
            "arn:aws:lambda:us-east-1:000000000000:function:thumbnailer"
        );
        assert_eq!(back.events, vec![Event::from("s3:ObjectCreated:*".to_string())]);
        let filter_rules = back
            .filter
            .and_then(|f| f.key)
            .and_then(|k| k.filter_rules)
            .unwrap_or_default();
        assert_eq!(filter_rules.len(), 2);
        assert!(configuration(&rules[1]).filter.is_none());
    }

    #[test]
    fn bad_configurations_are_refused() {
        let refused = |c: NotificationConfiguration| rules(c).err().map(|e| e.code().as_str().to_string());
        let bad = |l| refused(config(vec![l]));
        assert_eq!(
            bad(lambda(None, "f", &["s3:ObjectCreated:Nope"], &[])).as_deref(),
            Some("InvalidArgument")
        );
        assert_eq!(
            bad(lambda(None, "Not_A_Name", &["s3:ObjectCreated:*"], &[])).as_deref(),
            Some("InvalidArgument")
        );
        assert_eq!(
            bad(lambda(
                None,
                "arn:aws:lambda:r:1:function:f:prod",
                &["s3:ObjectCreated:*"],
                &[]
            ))
            .as_deref(),
            Some("InvalidArgument")
        );
        assert_eq!(
            bad(lambda(
                None,
                "f",
                &["s3:ObjectCreated:*"],
                &[("prefix", "a"), ("Prefix", "b")]
            ))
            .as_deref(),
            Some("InvalidArgument")
        );
        assert_eq!(
            bad(lambda(None, "f", &["s3:ObjectCreated:*"], &[("contains", "a")])).as_deref(),
            Some("InvalidArgument")
        );
        assert_eq!(
            refused(config(vec![
                lambda(Some("x"), "f", &["s3:ObjectCreated:*"], &[]),
                lambda(Some("x"), "g", &["s3:ObjectCreated:*"], &[]),
            ]))
            .as_deref(),
            Some("InvalidArgument")
        );
        let topics = NotificationConfiguration {
            topic_configurations: Some(vec![TopicConfiguration::default()]),
            ..NotificationConfiguration::default()
        };
        assert_eq!(refused(topics).as_deref(), Some("NotImplemented"));
        assert_eq!(
            rules(NotificationConfiguration::default()).map(|r| r.len()).ok(),
            Some(0)
        );
    }
}
