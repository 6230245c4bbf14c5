//! Unit tests of the identity header: validation, tags, printable errors.
use super::*;

fn header_tagged(bytes: &[u8], len: u32) -> Identity {
    let id = Identity::default();
    id.tag_len.store(len, Ordering::Relaxed);
    for (word, chunk) in id.tag.iter().zip(bytes.chunks(8)) {
        let mut buf = [0u8; 8];
        buf[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_ne_bytes(buf), Ordering::Relaxed);
    }
    id
}

#[test]
fn tags_must_be_short_printable_ascii() {
    assert_eq!(header_tagged(b"<f8", 3).tag().unwrap(), "<f8");
    assert_eq!(header_tagged(b"", 0).tag().unwrap(), "");
    // What follows the tag's length is not part of it.
    assert_eq!(header_tagged(b"<f8\x1bjunk", 3).tag().unwrap(), "<f8");
    let long = [b'x'; TAG_MAX];
    assert_eq!(header_tagged(&long, 64).tag().unwrap(), "x".repeat(64));
    for (bytes, len) in [
        (&b"<f8"[..], 65),
        (b"<f8", u32::MAX),
        (b"\xff\xfe", 2),
        (b"a\x1b[2Jb", 6),
        (b"tab\there", 8),
        ("x\u{202e}y".as_bytes(), 5),
        (b"<f8", 4),
    ] {
        match header_tagged(bytes, len).tag() {
            Err(Error::Corrupted(reason)) => {
                assert!(
                    reason.chars().all(|c| c.is_ascii_graphic() || c == ' '),
                    "{reason:?}"
                )
            }
            other => panic!("{bytes:?} {len}: {other:?}"),
        }
    }
}

#[test]
fn published_tags_read_back_in_memory_order() {
    let ty = TypeInfo::of::<f64>()
        .unwrap()
        .tagged(Some("a tag of 17 bytes"))
        .unwrap();
    let g = Geometry::new(Kind::Array, &ty, 0, 0, 0, 0, 0).unwrap();
    let id = Identity::default();
    id.publish(&g, &ty);
    assert_eq!(id.tag().unwrap(), "a tag of 17 bytes");
    let bytes: Vec<u8> = id
        .tag
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_ne_bytes())
        .collect();
    assert_eq!(&bytes[..17], b"a tag of 17 bytes");
    assert!(bytes[17..].iter().all(|&b| b == 0));
}

#[test]
fn built_in_types_carry_numpy_dtypes() {
    let le = cfg!(target_endian = "little");
    let want = |s: &str| {
        if le || s.starts_with('|') {
            s.to_owned()
        } else {
            s.replace('<', ">")
        }
    };
    for (tag, ty) in [
        ("<f8", TypeInfo::of::<f64>()),
        ("<f4", TypeInfo::of::<f32>()),
        ("<i8", TypeInfo::of::<i64>()),
        ("<u8", TypeInfo::of::<u64>()),
        ("<i4", TypeInfo::of::<i32>()),
        ("<u4", TypeInfo::of::<u32>()),
        ("<i2", TypeInfo::of::<i16>()),
        ("<u2", TypeInfo::of::<u16>()),
        ("|i1", TypeInfo::of::<i8>()),
        ("|u1", TypeInfo::of::<u8>()),
        ("", TypeInfo::of::<[f64; 2]>()),
        ("", TypeInfo::of::<[u8; 3]>()),
    ] {
        assert_eq!(ty.unwrap().tag, want(tag));
    }
}

#[test]
fn tags_match_when_equal_or_either_is_unset() {
    let f64_ = TypeInfo::of::<f64>().unwrap();
    assert!(f64_.matches(8, 8, "<f8"));
    assert!(f64_.matches(8, 8, ""));
    assert!(!f64_.matches(8, 8, "<u8"));
    assert!(!f64_.matches(4, 8, "<f8"));
    assert!(!f64_.matches(8, 4, ""));
    let pair = TypeInfo::of::<[f64; 2]>().unwrap();
    assert!(pair.matches(16, 8, ""));
    assert!(pair.matches(16, 8, "(2,)<f8"));
    let tagged = pair.tagged(Some("(2,)<f8")).unwrap();
    assert!(tagged.matches(16, 8, "(2,)<f8"));
    assert!(tagged.matches(16, 8, ""));
    assert!(!tagged.matches(16, 8, "(2,)<u8"));
}

#[test]
fn bad_tags_are_refused_at_creation() {
    for bad in ["", "é", "a\nb", "\x7f", &"x".repeat(TAG_MAX + 1)] {
        let r = TypeInfo::of::<f64>().unwrap().tagged(Some(bad));
        assert!(matches!(r, Err(Error::UnsupportedType { .. })), "{bad:?}");
    }
    let ok = "x".repeat(TAG_MAX);
    assert_eq!(
        TypeInfo::of::<f64>()
            .unwrap()
            .tagged(Some(&ok))
            .unwrap()
            .tag,
        ok
    );
}
