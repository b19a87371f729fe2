//! Between the wasi:filesystem@0.3 types and the 0.2 ones the `/tmp`
//! operations speak: the same records, flags and codes but for clock types
//! and a few variants.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::filesystem::types as p2;
use wasmtime_wasi::p3::bindings::clocks::system_clock::Instant;
use wasmtime_wasi::p3::bindings::filesystem::types::{
    DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode, MetadataHashValue,
    NewTimestamp, OpenFlags,
};

pub fn timestamp(t: &NewTimestamp) -> Result<Option<SystemTime>, ErrorCode> {
    let Instant {
        seconds,
        nanoseconds,
    } = match t {
        NewTimestamp::NoChange => return Ok(None),
        NewTimestamp::Now => return Ok(Some(SystemTime::now())),
        NewTimestamp::Timestamp(t) => *t,
    };
    let since = Duration::from_secs(seconds.unsigned_abs())
        .checked_add(Duration::from_nanos(u64::from(nanoseconds)))
        .ok_or(ErrorCode::Overflow)?;
    let t = if seconds >= 0 {
        UNIX_EPOCH.checked_add(since)
    } else {
        UNIX_EPOCH.checked_sub(since)
    };
    t.map(Some).ok_or(ErrorCode::Overflow)
}

/// The 0.2 and 0.3 descriptor flags, which are the same six.
const DESCRIPTOR_FLAGS: [(p2::DescriptorFlags, DescriptorFlags); 6] = [
    (p2::DescriptorFlags::READ, DescriptorFlags::READ),
    (p2::DescriptorFlags::WRITE, DescriptorFlags::WRITE),
    (
        p2::DescriptorFlags::FILE_INTEGRITY_SYNC,
        DescriptorFlags::FILE_INTEGRITY_SYNC,
    ),
    (
        p2::DescriptorFlags::DATA_INTEGRITY_SYNC,
        DescriptorFlags::DATA_INTEGRITY_SYNC,
    ),
    (
        p2::DescriptorFlags::REQUESTED_WRITE_SYNC,
        DescriptorFlags::REQUESTED_WRITE_SYNC,
    ),
    (
        p2::DescriptorFlags::MUTATE_DIRECTORY,
        DescriptorFlags::MUTATE_DIRECTORY,
    ),
];

pub fn descriptor_flags(flags: p2::DescriptorFlags) -> DescriptorFlags {
    DESCRIPTOR_FLAGS
        .iter()
        .filter(|(two, _)| flags.contains(*two))
        .fold(DescriptorFlags::empty(), |all, (_, three)| all | *three)
}

pub fn flags_p2(flags: DescriptorFlags) -> p2::DescriptorFlags {
    DESCRIPTOR_FLAGS
        .iter()
        .filter(|(_, three)| flags.contains(*three))
        .fold(p2::DescriptorFlags::empty(), |all, (two, _)| all | *two)
}

pub fn open_flags_p2(flags: OpenFlags) -> p2::OpenFlags {
    [
        (OpenFlags::CREATE, p2::OpenFlags::CREATE),
        (OpenFlags::DIRECTORY, p2::OpenFlags::DIRECTORY),
        (OpenFlags::EXCLUSIVE, p2::OpenFlags::EXCLUSIVE),
        (OpenFlags::TRUNCATE, p2::OpenFlags::TRUNCATE),
    ]
    .into_iter()
    .filter(|(three, _)| flags.contains(*three))
    .fold(p2::OpenFlags::empty(), |all, (_, two)| all | two)
}

pub fn descriptor_type(kind: p2::DescriptorType) -> DescriptorType {
    match kind {
        p2::DescriptorType::BlockDevice => DescriptorType::BlockDevice,
        p2::DescriptorType::CharacterDevice => DescriptorType::CharacterDevice,
        p2::DescriptorType::Directory => DescriptorType::Directory,
        p2::DescriptorType::Fifo => DescriptorType::Fifo,
        p2::DescriptorType::SymbolicLink => DescriptorType::SymbolicLink,
        p2::DescriptorType::RegularFile => DescriptorType::RegularFile,
        p2::DescriptorType::Socket => DescriptorType::Socket,
        p2::DescriptorType::Unknown => DescriptorType::Other(None),
    }
}

pub fn directory_entry(entry: p2::DirectoryEntry) -> DirectoryEntry {
    DirectoryEntry {
        type_: descriptor_type(entry.type_),
        name: entry.name,
    }
}

fn instant(t: Datetime) -> Instant {
    Instant {
        // Seconds since 1970 fit an i64 for the next 292 billion years.
        seconds: i64::try_from(t.seconds).unwrap_or(i64::MAX),
        nanoseconds: t.nanoseconds,
    }
}

pub fn descriptor_stat(stat: p2::DescriptorStat) -> DescriptorStat {
    DescriptorStat {
        type_: descriptor_type(stat.type_),
        link_count: stat.link_count,
        size: stat.size,
        data_access_timestamp: stat.data_access_timestamp.map(instant),
        data_modification_timestamp: stat.data_modification_timestamp.map(instant),
        status_change_timestamp: stat.status_change_timestamp.map(instant),
    }
}

pub fn metadata_hash(hash: p2::MetadataHashValue) -> MetadataHashValue {
    MetadataHashValue {
        lower: hash.lower,
        upper: hash.upper,
    }
}

/// The 0.3 error code of a 0.2 one: the same, but for 0.2's `would-block`,
/// which 0.3 dropped.
pub fn error_code(code: p2::ErrorCode) -> ErrorCode {
    macro_rules! same {
        ($($name:ident)*) => {
            match code {
                $(p2::ErrorCode::$name => ErrorCode::$name,)*
                p2::ErrorCode::WouldBlock => ErrorCode::Other(Some("would-block".to_owned())),
            }
        };
    }
    same!(
        Access Already BadDescriptor Busy Deadlock Quota Exist FileTooLarge
        IllegalByteSequence InProgress Interrupted Invalid Io IsDirectory Loop
        TooManyLinks MessageSize NameTooLong NoDevice NoEntry NoLock
        InsufficientMemory InsufficientSpace NotDirectory NotEmpty NotRecoverable
        Unsupported NoTty NoSuchDevice Overflow NotPermitted Pipe ReadOnly
        InvalidSeek TextFileBusy CrossDevice
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_between_versions() {
        let all = DESCRIPTOR_FLAGS
            .iter()
            .fold(DescriptorFlags::empty(), |all, (_, three)| all | *three);
        assert_eq!(descriptor_flags(flags_p2(all)), all);
        let some = DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY;
        assert_eq!(
            flags_p2(some),
            p2::DescriptorFlags::READ | p2::DescriptorFlags::MUTATE_DIRECTORY
        );
        assert_eq!(
            open_flags_p2(OpenFlags::CREATE | OpenFlags::TRUNCATE),
            p2::OpenFlags::CREATE | p2::OpenFlags::TRUNCATE
        );
    }

    #[test]
    fn timestamps_before_and_after_the_epoch() {
        let at = |seconds, nanoseconds| {
            timestamp(&NewTimestamp::Timestamp(Instant {
                seconds,
                nanoseconds,
            }))
        };
        assert_eq!(at(10, 5).unwrap(), Some(UNIX_EPOCH + Duration::new(10, 5)));
        assert_eq!(
            at(-10, 0).unwrap(),
            Some(UNIX_EPOCH - Duration::from_secs(10))
        );
        assert_eq!(timestamp(&NewTimestamp::NoChange).unwrap(), None);
    }

    #[test]
    fn error_codes_keep_their_meaning() {
        assert!(matches!(
            error_code(p2::ErrorCode::InsufficientSpace),
            ErrorCode::InsufficientSpace
        ));
        assert!(matches!(
            error_code(p2::ErrorCode::CrossDevice),
            ErrorCode::CrossDevice
        ));
        assert!(matches!(
            error_code(p2::ErrorCode::WouldBlock),
            ErrorCode::Other(Some(_))
        ));
    }
}
