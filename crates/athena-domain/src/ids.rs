use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id (UUID v7), for rows the server creates.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                // Ids are UUIDs in canonical lowercase form; anything else never reaches storage.
                let parsed = uuid::Uuid::parse_str(s)
                    .map_err(|_| ParseError::new(stringify!($name), "must be a UUID"))?;
                Ok(Self(parsed.hyphenated().to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

uuid_id!(
    /// A user's id; also the `sub` of their tokens.
    UserId
);
uuid_id!(
    /// A book row's id.
    BookId
);
uuid_id!(
    /// A shelf row's id.
    ShelfId
);
uuid_id!(
    /// A login session's id (`sid` in access tokens).
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_uuids_and_normalise_case() {
        let id: BookId = "0190F0E6-1C2B-7A00-8000-000000000001".parse().unwrap();
        assert_eq!(id.as_str(), "0190f0e6-1c2b-7a00-8000-000000000001");
        assert!("../../etc".parse::<BookId>().is_err());
        assert!("".parse::<UserId>().is_err());
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = ShelfId::new();
        let b = ShelfId::new();
        assert!(a < b);
    }
}
