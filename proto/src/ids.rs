//! Identifiers every group and client shares: shows, seats, owners, and the ids of objects a
//! log entry creates (holds, bookings), rendered `"{show}-{seq}"` so they route by show.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Raft group: 0 is reserved for the meta group; inventory shards are 1.. .
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct GroupId(pub u64);

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A show (one screening or performance). Chosen by the proposer, unique cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ShowId(pub u64);

/// A seat within a show's layout, e.g. `C7` (row label + number).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SeatId(pub String);

/// Who holds or booked seats: `u{user_id}` of the authenticated account (the gateway derives
/// it from the access token; clients never choose it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct OwnerId(pub String);

/// Identifies an object created by a log entry: the show it belongs to (for routing) and the
/// index of the entry that created it (unique within the show's group). Rendered `"{show}-{seq}"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryRef {
    /// The show the object belongs to.
    pub show_id: ShowId,
    /// Log index of the entry that created the object.
    pub seq: u64,
}

macro_rules! entry_ref_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub EntryRef);

        impl $name {
            /// Builds the id from the show and the creating entry's log index.
            pub fn new(show_id: ShowId, seq: u64) -> Self {
                Self(EntryRef { show_id, seq })
            }
            /// The show this object belongs to.
            pub fn show_id(&self) -> ShowId {
                self.0.show_id
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}-{}", self.0.show_id.0, self.0.seq)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let (show, seq) = s.split_once('-').ok_or(ParseIdError)?;
                let show = show.parse::<u64>().map_err(|_| ParseIdError)?;
                let seq = seq.parse::<u64>().map_err(|_| ParseIdError)?;
                Ok(Self::new(ShowId(show), seq))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^[0-9]+-[0-9]+$"))
                    .description(Some("`{show_id}-{seq}`: the show and the log index that created it"))
                    .examples([serde_json::json!("7-42")])
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

entry_ref_id!(
    /// A hold on seats, created by a `Hold` entry.
    HoldId
);
entry_ref_id!(
    /// A booking, created by a `BeginCheckout` entry.
    BookingId
);

/// A string that is not a valid `{show}-{seq}` id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed id: expected \"<show>-<seq>\" with two unsigned integers")]
pub struct ParseIdError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = HoldId::new(ShowId(42), 7);
        assert_eq!(id.to_string(), "42-7");
        assert_eq!("42-7".parse::<HoldId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"42-7\"");
        assert_eq!(serde_json::from_str::<HoldId>(&json).unwrap(), id);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in ["", "42", "-7", "42-", "a-1", "1-b", "1-2-3", "18446744073709551616-1"] {
            assert!(bad.parse::<BookingId>().is_err(), "{bad} should not parse");
        }
    }
}
