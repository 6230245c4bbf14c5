//! Unit tests of the error helpers and conversions.
use super::*;

const REASON: &str = "test damage";

#[test]
fn try_send_predicates_name_one_variant_each() {
    let cases = [
        (TrySendError::Full, [true, false, false, false]),
        (TrySendError::Disconnected, [false, true, false, false]),
        (
            TrySendError::TooLarge { len: 9, max: 8 },
            [false, false, true, false],
        ),
        (
            TrySendError::Corrupted { reason: REASON },
            [false, false, false, true],
        ),
    ];
    for (e, want) in cases {
        let got = [
            e.is_full(),
            e.is_disconnected(),
            e.is_too_large(),
            e.is_corrupted(),
        ];
        assert_eq!(got, want, "{e:?}");
    }
}

#[test]
fn send_predicates_name_one_variant_each() {
    let cases = [
        (SendError::Disconnected, [true, false, false]),
        (SendError::TooLarge { len: 9, max: 8 }, [false, true, false]),
        (
            SendError::Corrupted { reason: REASON },
            [false, false, true],
        ),
    ];
    for (e, want) in cases {
        let got = [e.is_disconnected(), e.is_too_large(), e.is_corrupted()];
        assert_eq!(got, want, "{e:?}");
    }
}

#[test]
fn send_timeout_predicates_name_one_variant_each() {
    let cases = [
        (SendTimeoutError::Timeout, [true, false, false, false]),
        (SendTimeoutError::Disconnected, [false, true, false, false]),
        (
            SendTimeoutError::TooLarge { len: 9, max: 8 },
            [false, false, true, false],
        ),
        (
            SendTimeoutError::Corrupted { reason: REASON },
            [false, false, false, true],
        ),
    ];
    for (e, want) in cases {
        let got = [
            e.is_timeout(),
            e.is_disconnected(),
            e.is_too_large(),
            e.is_corrupted(),
        ];
        assert_eq!(got, want, "{e:?}");
    }
}

#[test]
fn try_recv_predicates_name_one_variant_each() {
    let cases = [
        (TryRecvError::Empty, [true, false, false]),
        (TryRecvError::Disconnected, [false, true, false]),
        (
            TryRecvError::Corrupted { reason: REASON },
            [false, false, true],
        ),
    ];
    for (e, want) in cases {
        let got = [e.is_empty(), e.is_disconnected(), e.is_corrupted()];
        assert_eq!(got, want, "{e:?}");
    }
}

#[test]
fn recv_predicates_name_one_variant_each() {
    let cases = [
        (RecvError::Disconnected, [true, false]),
        (RecvError::Corrupted { reason: REASON }, [false, true]),
    ];
    for (e, want) in cases {
        assert_eq!([e.is_disconnected(), e.is_corrupted()], want, "{e:?}");
    }
}

#[test]
fn recv_timeout_predicates_name_one_variant_each() {
    let cases = [
        (RecvTimeoutError::Timeout, [true, false, false]),
        (RecvTimeoutError::Disconnected, [false, true, false]),
        (
            RecvTimeoutError::Corrupted { reason: REASON },
            [false, false, true],
        ),
    ];
    for (e, want) in cases {
        let got = [e.is_timeout(), e.is_disconnected(), e.is_corrupted()];
        assert_eq!(got, want, "{e:?}");
    }
}

#[test]
fn send_error_converts_to_the_same_variant() {
    let all = [
        SendError::Disconnected,
        SendError::TooLarge { len: 9, max: 8 },
        SendError::Corrupted { reason: REASON },
    ];
    for e in all {
        let t = SendTimeoutError::from(e);
        let n = TrySendError::from(e);
        // Same variant, same fields, same message.
        assert_eq!(t.to_string(), e.to_string());
        assert_eq!(n.to_string(), e.to_string());
        assert_eq!(t.without_deadline(), e);
        assert_eq!(n.into_blocking(), Some(e));
    }
    assert_eq!(
        TrySendError::from(SendError::TooLarge { len: 9, max: 8 }),
        TrySendError::TooLarge { len: 9, max: 8 }
    );
}

#[test]
fn recv_error_converts_to_the_same_variant() {
    for e in [
        RecvError::Disconnected,
        RecvError::Corrupted { reason: REASON },
    ] {
        let t = RecvTimeoutError::from(e);
        let n = TryRecvError::from(e);
        assert_eq!(t.to_string(), e.to_string());
        assert_eq!(n.to_string(), e.to_string());
        assert_eq!(t.without_deadline(), e);
        assert_eq!(n.into_blocking(), Some(e));
    }
}

#[test]
fn question_mark_widens_blocking_errors() {
    fn try_send() -> Result<(), TrySendError> {
        Err(SendError::Disconnected)?
    }
    fn send_timeout() -> Result<(), SendTimeoutError> {
        Err(SendError::Disconnected)?
    }
    fn try_recv() -> Result<(), TryRecvError> {
        Err(RecvError::Disconnected)?
    }
    fn recv_timeout() -> Result<(), RecvTimeoutError> {
        Err(RecvError::Disconnected)?
    }
    assert!(try_send().unwrap_err().is_disconnected());
    assert!(send_timeout().unwrap_err().is_disconnected());
    assert!(try_recv().unwrap_err().is_disconnected());
    assert!(recv_timeout().unwrap_err().is_disconnected());
}

fn name() -> String {
    "prices".to_string()
}

/// One error of every variant, with the io kind it must map to.
fn every_error() -> Vec<(Error, io::ErrorKind)> {
    use io::ErrorKind as K;
    vec![
        (
            Error::InvalidName {
                name: "a/b".into(),
                reason: "has a slash",
            },
            K::InvalidInput,
        ),
        (
            Error::InvalidSize {
                what: "capacity",
                value: 0,
                reason: "at least 1".into(),
            },
            K::InvalidInput,
        ),
        (
            Error::UnsupportedType {
                type_name: "Zst",
                reason: "zero-sized",
            },
            K::InvalidInput,
        ),
        (Error::NotFound { name: name() }, K::NotFound),
        (Error::AlreadyExists { name: name() }, K::AlreadyExists),
        (
            Error::VersionMismatch {
                found: 1,
                expected: 3,
            },
            K::InvalidData,
        ),
        (
            Error::KindMismatch {
                found: Kind::Spsc,
                expected: Kind::Mpmc,
            },
            K::InvalidData,
        ),
        (
            Error::TypeMismatch {
                found: "<f4".into(),
                found_size: 4,
                found_align: 4,
                expected: "<f8".into(),
                expected_size: 8,
                expected_align: 8,
            },
            K::InvalidData,
        ),
        (
            Error::AlreadyAttached {
                name: name(),
                role: Role::Sender,
                pid: 1,
            },
            K::Other,
        ),
        (
            Error::TooManyAttached {
                name: name(),
                max: 64,
            },
            K::Other,
        ),
        (
            Error::NotReady {
                name: name(),
                waited_ms: 100,
            },
            K::TimedOut,
        ),
        (
            Error::NotShmbatch {
                name: name(),
                reason: "no shmbatch magic".into(),
            },
            K::InvalidData,
        ),
        (Error::Corrupted("bad tail".into()), K::InvalidData),
        (
            Error::Io {
                op: "shm_open",
                name: name(),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            },
            K::PermissionDenied,
        ),
    ]
}

#[test]
fn error_predicates_name_one_variant_each() {
    for (e, _) in every_error() {
        let want = [
            matches!(e, Error::NotFound { .. }),
            matches!(e, Error::AlreadyExists { .. }),
            matches!(e, Error::Corrupted(_)),
            matches!(e, Error::NotReady { .. }),
        ];
        let got = [
            e.is_not_found(),
            e.is_already_exists(),
            e.is_corrupted(),
            e.is_timeout(),
        ];
        assert_eq!(got, want, "{e:?}");
    }
}

#[test]
fn error_into_io_error_has_its_kind_and_keeps_it_as_source() {
    for (e, kind) in every_error() {
        let msg = e.to_string();
        assert_eq!(e.io_kind(), kind, "{e:?}");
        let io_err = io::Error::from(e);
        assert_eq!(io_err.kind(), kind, "{msg}");
        assert_eq!(io_err.to_string(), msg);
        let inner = io_err.get_ref().expect("custom error");
        let back = inner.downcast_ref::<Error>().expect("the original error");
        assert_eq!(back.to_string(), msg);
        assert_eq!(back.io_kind(), kind);
    }
}

#[test]
fn io_variant_keeps_the_os_error_down_the_source_chain() {
    let e = Error::Io {
        op: "shm_open",
        name: name(),
        source: io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error()),
    };
    let io_err = io::Error::from(e);
    assert_eq!(io_err.kind(), io::ErrorKind::PermissionDenied);
    let inner = io_err.into_inner().expect("custom error");
    let os = inner
        .source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .expect("the OS error as source");
    assert_eq!(
        os.raw_os_error(),
        Some(rustix::io::Errno::ACCESS.raw_os_error())
    );
}
