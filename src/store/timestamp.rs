//! A moment in time as ferry keeps it: milliseconds since the Unix epoch,
//! UTC. The store holds it in an integer column (SQLite `INTEGER`,
//! PostgreSQL `BIGINT`), so it sorts, compares and takes an interval in
//! SQL as a number does; in Rust it is its own type, so a count, an id or
//! a length in milliseconds cannot be passed where a moment is meant.

use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// In JSON (a log line's `t`), the bare number of milliseconds.
/// No `Display`: a time is written either as RFC 3339 (`rfc3339`) or as
/// the stored number (`as_millis`), and each place says which.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch: the earliest moment, for "before everything".
    pub const EPOCH: Timestamp = Timestamp(0);

    pub fn now() -> Timestamp {
        // A clock before 1970 is a broken clock: it reads as the epoch.
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since.as_millis().min(i64::MAX as u128) as i64)
    }

    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch, as the store and the JSON outputs
    /// keep them.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `2026-12-08T01:30:00Z`, to the second.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_seconds(self.system_time()).to_string()
    }

    /// `2026-12-08T01:30:00.123Z`, to the millisecond (log lines).
    pub fn rfc3339_millis(self) -> String {
        humantime::format_rfc3339_millis(self.system_time()).to_string()
    }

    fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.max(0) as u64)
    }

    pub fn from_jiff(t: jiff::Timestamp) -> Timestamp {
        Timestamp(t.as_millisecond())
    }
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(millis(d)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(millis(d)))
    }
}

/// How long after the other moment this one is; zero if it is not after
/// (a clock that stepped back never makes a negative duration).
impl Sub<Timestamp> for Timestamp {
    type Output = Duration;
    fn sub(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl rusqlite::ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.0.into())
    }
}

impl rusqlite::types::FromSql for Timestamp {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(v).map(Timestamp)
    }
}

impl sqlx::Type<sqlx::Postgres> for Timestamp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <i64 as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

/// Bound as an array (`unnest($1::bigint[])`) in batch writes.
impl sqlx::postgres::PgHasArrayType for Timestamp {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        <i64 as sqlx::postgres::PgHasArrayType>::array_type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <i64 as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl sqlx::Decode<'_, sqlx::Postgres> for Timestamp {
    fn decode(v: sqlx::postgres::PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        <i64 as sqlx::Decode<sqlx::Postgres>>::decode(v).map(Timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_differences_are_never_negative() {
        let t = Timestamp::from_millis(10_000);
        assert_eq!((t + Duration::from_secs(2)).as_millis(), 12_000);
        assert_eq!((t - Duration::from_secs(2)).as_millis(), 8_000);
        assert_eq!(t - Timestamp::from_millis(4_000), Duration::from_secs(6));
        assert_eq!(Timestamp::from_millis(4_000) - t, Duration::ZERO);
        let far = Timestamp::from_millis(i64::MAX - 1) + Duration::from_secs(10);
        assert_eq!(far.as_millis(), i64::MAX);
        assert_eq!(Timestamp::from_millis(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_millis(1_765_157_400_000).rfc3339(),
            "2025-12-08T01:30:00Z"
        );
    }
}
