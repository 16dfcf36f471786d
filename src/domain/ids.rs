//! Job and session identifiers: 18 lowercase base32 characters, time-ordered so that sorting by id is
//! sorting by creation time (newest-first listing and pagination need nothing else), and safe
//! inside Kubernetes object names (`sk8-<id>-<attempt>`).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Crockford's base32 alphabet in lowercase: no i, l, o, u, so ids read back unambiguously.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const TIME_CHARS: usize = 10; // 50 bits, enough for a millisecond clock until the year 37000
const RANDOM_CHARS: usize = 8; // 40 bits: random, then counting up within a millisecond
const RANDOM_MAX: u64 = (1 << 40) - 1;
pub const JOB_ID_LEN: usize = TIME_CHARS + RANDOM_CHARS;

/// An 18-character time-ordered identifier type: `generate`, `parse`, `as_str`, `Display`.
macro_rules! time_ordered_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, example = "01kb2r5q3h7m9x4c2d")]
        pub struct $name(String);

        impl $name {
            /// A new id, greater than every id of this type this process made before.
            pub fn generate() -> Self {
                $name(generate_id())
            }

            /// Parses an id from a URL or a page token; `None` when it cannot be one of ours.
            pub fn parse(s: &str) -> Option<Self> {
                is_id(s).then(|| $name(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

time_ordered_id!(
    /// A batch job.
    JobId
);
time_ordered_id!(
    /// An interactive Spark Connect session.
    SessionId
);

/// A new id made now. Within one millisecond the random part counts up instead of being drawn
/// again, so things created in quick succession still list in the order they were accepted.
fn generate_id() -> String {
    static LAST: Mutex<(u64, u64)> = Mutex::new((0, 0));
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (millis, random) = next_id_parts(&mut last, now, fresh_random);
    drop(last);
    let mut id = String::with_capacity(JOB_ID_LEN);
    push_base32(&mut id, millis, TIME_CHARS);
    push_base32(&mut id, random, RANDOM_CHARS);
    id
}

fn is_id(s: &str) -> bool {
    s.len() == JOB_ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// The (millisecond, random) pair after `last`, which it then becomes.
fn next_id_parts(last: &mut (u64, u64), now: u64, random: impl FnOnce() -> u64) -> (u64, u64) {
    let next = if now > last.0 {
        (now, random())
    } else if last.1 < RANDOM_MAX {
        (last.0, last.1 + 1)
    } else {
        // 2^40 ids in one millisecond: borrow the next millisecond.
        (last.0 + 1, 0)
    };
    *last = next;
    next
}

/// 40 random bits, with the top bit clear so a millisecond has room to count up.
fn fresh_random() -> u64 {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) >> 1
}

fn push_base32(out: &mut String, value: u64, chars: usize) {
    for i in (0..chars).rev() {
        let digit = (value >> (5 * i)) & 0x1f;
        out.push(ALPHABET[digit as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let a = JobId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = JobId::generate();
        assert!(JobId::parse(a.as_str()).is_some());
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn ids_made_in_one_millisecond_still_increase() {
        let ids: Vec<JobId> = (0..2000).map(|_| JobId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_full_millisecond_borrows_the_next() {
        let mut last = (0, 0);
        assert_eq!(next_id_parts(&mut last, 5, || RANDOM_MAX), (5, RANDOM_MAX));
        assert_eq!(next_id_parts(&mut last, 5, || 0), (6, 0));
        assert_eq!(
            next_id_parts(&mut last, 4, || 0),
            (6, 1),
            "a clock step back"
        );
    }

    #[test]
    fn rejects_foreign_strings() {
        for bad in [
            "",
            "../etc/passwd",
            "01KB2R5Q3H7M9X4C2D",
            "01kb2r5q3h7m9x4c2",
            "01kb2r5q3h7m9x4c2i",
        ] {
            assert!(JobId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
