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

/// Identifies an object created by a log entry: the show it belongs to (for routing), the
/// index of the entry that created it and, for an entry carrying a batch of commands, the
/// position of the creating command in the batch (unique within the show's group together).
/// Rendered `"{show}-{seq}"` for the first (or only) command of an entry and
/// `"{show}-{seq}-{sub}"` for a later one, so ids written before batching keep their form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryRef {
    /// The show the object belongs to.
    pub show_id: ShowId,
    /// Log index of the entry that created the object.
    pub seq: u64,
    /// Position of the creating command in its entry's batch (0 for the first or only one).
    pub sub: u32,
}

macro_rules! entry_ref_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub EntryRef);

        impl $name {
            /// Builds the id from the show and the creating entry's log index.
            pub fn new(show_id: ShowId, seq: u64) -> Self {
                Self(EntryRef { show_id, seq, sub: 0 })
            }
            /// Builds the id of an object created by command `sub` of a batched entry.
            pub fn at(show_id: ShowId, seq: u64, sub: u32) -> Self {
                Self(EntryRef { show_id, seq, sub })
            }
            /// The first id of `show_id` in id order.
            pub fn first_of(show_id: ShowId) -> Self {
                Self::at(show_id, 0, 0)
            }
            /// The last possible id of `show_id` in id order.
            pub fn last_of(show_id: ShowId) -> Self {
                Self::at(show_id, u64::MAX, u32::MAX)
            }
            /// The show this object belongs to.
            pub fn show_id(&self) -> ShowId {
                self.0.show_id
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.0.sub == 0 {
                    write!(f, "{}-{}", self.0.show_id.0, self.0.seq)
                } else {
                    write!(f, "{}-{}-{}", self.0.show_id.0, self.0.seq, self.0.sub)
                }
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let number = |part: &str| {
                    // Digits only: `parse` would also take a leading `+`.
                    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ParseIdError);
                    }
                    part.parse::<u64>().map_err(|_| ParseIdError)
                };
                let (show, rest) = s.split_once('-').ok_or(ParseIdError)?;
                let (seq, sub) = match rest.split_once('-') {
                    None => (number(rest)?, 0),
                    Some((seq, sub)) => {
                        let sub = u32::try_from(number(sub)?).map_err(|_| ParseIdError)?;
                        // `sub` 0 is written without its part: one spelling per id.
                        if sub == 0 {
                            return Err(ParseIdError);
                        }
                        (number(seq)?, sub)
                    }
                };
                Ok(Self::at(ShowId(number(show)?), seq, sub))
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
                    .pattern(Some("^[0-9]+-[0-9]+(-[1-9][0-9]*)?$"))
                    .description(Some("`{show_id}-{seq}` or `{show_id}-{seq}-{sub}`: the show, the log index that created it and, for a command batched with others in one entry, its position"))
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

/// A string that is not a valid `{show}-{seq}` or `{show}-{seq}-{sub}` id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed id: expected \"<show>-<seq>\" or \"<show>-<seq>-<sub>\" with unsigned integers")]
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
        let batched = HoldId::at(ShowId(42), 7, 3);
        assert_eq!(batched.to_string(), "42-7-3");
        assert_eq!("42-7-3".parse::<HoldId>(), Ok(batched));
        assert!(HoldId::first_of(ShowId(42)) < id && id < batched);
        assert!(
            batched < HoldId::last_of(ShowId(42))
                && HoldId::last_of(ShowId(42)) < HoldId::first_of(ShowId(43))
        );
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "42",
            "-7",
            "42-",
            "a-1",
            "1-b",
            "1-2-0",
            "1-2-",
            "1--3",
            "1-2-3-4",
            "+1-2",
            "1-+2",
            "1-2-+3",
            "1-2-4294967296",
            "18446744073709551616-1",
        ] {
            assert!(bad.parse::<BookingId>().is_err(), "{bad} should not parse");
        }
    }
}
