//! Published versions and aliases: the numbers a function's versions are published
//! under, the aliases that point at one version or split traffic between two
//! ([`AliasTarget`]), and the qualifiers that name either ([`Qualifier`]).

use crate::name::{AliasName, NameError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The alias every function has: what routes, triggers and unqualified invocations run.
pub const LIVE: &str = "live";

/// The `live` alias's name.
pub fn live() -> AliasName {
    AliasName::live()
}

/// What an invocation names beside the function: a published version, an alias, or
/// `$LATEST` (Lambda's name for the newest version).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Qualifier {
    Version(u32),
    Alias(AliasName),
    Latest,
}

/// Why a qualifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QualifierError {
    #[error("invalid version `{0}`: versions are numbered from 1")]
    BadVersion(String),
    #[error(transparent)]
    BadAlias(#[from] NameError),
}

impl Qualifier {
    /// `live`.
    pub fn live() -> Qualifier {
        Qualifier::Alias(live())
    }
}

impl std::str::FromStr for Qualifier {
    type Err = QualifierError;

    /// `7` is a version, `$LATEST` the newest one, anything else an alias.
    fn from_str(s: &str) -> Result<Qualifier, QualifierError> {
        if s == "$LATEST" {
            return Ok(Qualifier::Latest);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Qualifier::Version(n)),
                _ => Err(QualifierError::BadVersion(s.to_string())),
            };
        }
        Ok(Qualifier::Alias(AliasName::new(s)?))
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Version(n) => write!(f, "{n}"),
            Qualifier::Alias(alias) => f.write_str(alias.as_str()),
            Qualifier::Latest => f.write_str("$LATEST"),
        }
    }
}

/// The share of an alias's traffic that goes to its second version: exact, in
/// millionths, from 0 to 1. Written as a decimal (`0.1`), as Lambda's routing config is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weight(u32);

impl Weight {
    /// One, in the millionths a weight counts.
    pub const ONE: u32 = 1_000_000;

    /// `share` of the traffic, which must be a number from 0 to 1.
    pub fn new(share: f64) -> Result<Weight, String> {
        if !share.is_finite() || !(0.0..=1.0).contains(&share) {
            return Err(format!(
                "a weight is a share of the traffic from 0 to 1, not {share}"
            ));
        }
        Ok(Weight((share * f64::from(Self::ONE)).round() as u32))
    }

    /// The weight in millionths.
    pub fn millionths(self) -> u32 {
        self.0
    }

    /// The weight as a share from 0 to 1.
    pub fn share(self) -> f64 {
        f64::from(self.0) / f64::from(Self::ONE)
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.share())
    }
}

impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.share())
    }
}

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Weight, D::Error> {
        Weight::new(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Where an alias points: one version, or two with the second taking `weight` of the
/// traffic (Lambda's `RoutingConfig.AdditionalVersionWeights`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasTarget {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional: Option<AdditionalVersion>,
}

/// An alias's second version and its share of the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdditionalVersion {
    pub version: u32,
    pub weight: Weight,
}

impl AliasTarget {
    /// All of the traffic to `version`.
    pub fn one(version: u32) -> AliasTarget {
        AliasTarget {
            version,
            additional: None,
        }
    }

    /// Checks the shape: versions numbered from 1, and a second version other than
    /// the first. (Whether the versions exist is the registry's to say.)
    pub fn validate(&self) -> Result<(), String> {
        if self.version == 0 {
            return Err("versions are numbered from 1".into());
        }
        if let Some(extra) = &self.additional {
            if extra.version == 0 {
                return Err("versions are numbered from 1".into());
            }
            if extra.version == self.version {
                return Err(format!(
                    "the additional version must differ from the main one ({})",
                    self.version
                ));
            }
        }
        Ok(())
    }

    /// Every version it points at.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.version).chain(self.additional.map(|a| a.version))
    }

    /// The version the invocation numbered `n` runs: of every million consecutive
    /// invocations, exactly `weight` go to the additional version, spread evenly (a
    /// golden-ratio sequence, so any run of invocations splits within a fraction of a
    /// percent of the weight, with no random draw on the request path).
    pub fn pick(&self, n: u64) -> u32 {
        match self.additional {
            Some(extra) if spread(n) < extra.weight.0 => extra.version,
            _ => self.version,
        }
    }
}

/// `n` spread over `[0, 1_000_000)`: the fractional part of `n × φ`, scaled.
fn spread(n: u64) -> u32 {
    const PHI: u64 = 0x9E37_79B9_7F4A_7C15;
    let fraction = n.wrapping_mul(PHI);
    ((u128::from(fraction) * u128::from(Weight::ONE)) >> 64) as u32
}

impl fmt::Display for AliasTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.version)?;
        if let Some(extra) = &self.additional {
            write!(f, " + {} at {}", extra.version, extra.weight)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers_name_versions_aliases_and_latest() {
        assert_eq!("7".parse::<Qualifier>().unwrap(), Qualifier::Version(7));
        assert_eq!("$LATEST".parse::<Qualifier>().unwrap(), Qualifier::Latest);
        assert_eq!("live".parse::<Qualifier>().unwrap(), Qualifier::live());
        assert!(matches!(
            "0".parse::<Qualifier>(),
            Err(QualifierError::BadVersion(_))
        ));
        assert!(matches!(
            "99999999999".parse::<Qualifier>(),
            Err(QualifierError::BadVersion(_))
        ));
        assert!(matches!(
            "Beta".parse::<Qualifier>(),
            Err(QualifierError::BadAlias(_))
        ));
        assert!(matches!(
            "".parse::<Qualifier>(),
            Err(QualifierError::BadAlias(_))
        ));
    }

    #[test]
    fn weights_are_shares_from_zero_to_one() {
        assert_eq!(Weight::new(0.1).unwrap().millionths(), 100_000);
        assert_eq!(Weight::new(1.0).unwrap().millionths(), Weight::ONE);
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert!(Weight::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Weight>("1.5").is_err());
        assert_eq!(
            serde_json::to_string(&Weight::new(0.25).unwrap()).unwrap(),
            "0.25"
        );
    }

    #[test]
    fn a_weighted_alias_splits_evenly_over_any_run() {
        let alias = AliasTarget {
            version: 7,
            additional: Some(AdditionalVersion {
                version: 8,
                weight: Weight::new(0.1).unwrap(),
            }),
        };
        for start in [0u64, 12_345, 1 << 40] {
            for len in [100u64, 1_000, 10_000] {
                let to_8 = (start..start + len).filter(|&n| alias.pick(n) == 8).count() as f64;
                let share = to_8 / len as f64;
                assert!((share - 0.1).abs() < 0.02, "{share} over {len} from {start}");
            }
        }
        assert!((0..1000).all(|n| AliasTarget::one(3).pick(n) == 3));
    }

    #[test]
    fn targets_refuse_version_zero_and_the_same_version_twice() {
        assert!(AliasTarget::one(0).validate().is_err());
        let twice = AliasTarget {
            version: 2,
            additional: Some(AdditionalVersion {
                version: 2,
                weight: Weight::new(0.5).unwrap(),
            }),
        };
        assert!(twice.validate().is_err());
        assert!(AliasTarget::one(1).validate().is_ok());
    }
}
