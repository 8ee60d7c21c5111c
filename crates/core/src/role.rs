//! What an API key may do: its [`Role`].

use serde::{Deserialize, Serialize};

/// An API key's role. Every role but `admin` is confined to the key's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, in every namespace: namespaces and keys too.
    Admin,
    /// Manage and read everything in its namespace: deploy, delete, queues, logs.
    Deploy,
    /// Invoke functions and send to queues in its namespace.
    Invoke,
    /// Read (`GET`) only, in its namespace.
    Read,
}

/// What a request needs its key's role to allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Reading anything of the namespace (a `GET`).
    Read,
    /// Invoking a function or sending to a queue.
    Invoke,
    /// Changing the namespace's functions and queues, and reading it.
    Deploy,
    /// Managing namespaces and keys.
    Admin,
}

impl Role {
    /// Every role, in order of power.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Deploy, Role::Invoke, Role::Read];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Deploy => "deploy",
            Role::Invoke => "invoke",
            Role::Read => "read",
        }
    }

    /// Parses a role by name.
    pub fn parse(text: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| UnknownRole(text.to_owned()))
    }

    /// Whether this role allows `permission` (in the key's own namespace; an admin's
    /// reach over other namespaces is the caller's to check).
    pub const fn allows(self, permission: Permission) -> bool {
        matches!(
            (self, permission),
            (Role::Admin, _)
                | (
                    Role::Deploy,
                    Permission::Read | Permission::Invoke | Permission::Deploy
                )
                | (Role::Invoke, Permission::Invoke)
                | (Role::Read, Permission::Read)
        )
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::parse(s)
    }
}

/// A role name that is none of Wisp's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: use admin, deploy, invoke or read")]
pub struct UnknownRole(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_refuse_unknown_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(
            Role::parse("root").unwrap_err().to_string(),
            "unknown role `root`: use admin, deploy, invoke or read"
        );
    }

    #[test]
    fn each_role_allows_what_it_says() {
        use Permission::*;
        let allowed = |role: Role| {
            [Read, Invoke, Deploy, Admin]
                .into_iter()
                .filter(|p| role.allows(*p))
                .collect::<Vec<_>>()
        };
        assert_eq!(allowed(Role::Admin), [Read, Invoke, Deploy, Admin]);
        assert_eq!(allowed(Role::Deploy), [Read, Invoke, Deploy]);
        assert_eq!(allowed(Role::Invoke), [Invoke]);
        assert_eq!(allowed(Role::Read), [Read]);
    }
}
