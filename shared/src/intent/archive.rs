//! `.tar.gz` bundles: their members, read under caps that are counted while decompressing
//! (never taken from headers), with hostile entries (links, devices, paths that climb out)
//! refused by name.

use super::Limits;
use flate2::read::GzDecoder;
use std::cell::Cell;
use std::io::{self, Read};
use std::ops::ControlFlow;

/// The formats documents come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TextKind {
    Yaml,
    Json,
}

/// What a bundle is, told from its key and, failing that, its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BundleKind {
    Text(TextKind),
    Archive,
    /// An uncompressed `.tar`: refused with a hint rather than read as garbled YAML.
    PlainTar,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub(super) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

pub(super) fn bundle_kind(key: &str, bytes: &[u8]) -> BundleKind {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        BundleKind::Archive
    } else if lower.ends_with(".tar") {
        BundleKind::PlainTar
    } else if let Some(kind) = text_kind(&lower) {
        BundleKind::Text(kind)
    } else if is_gzip(bytes) {
        BundleKind::Archive
    } else {
        BundleKind::Text(TextKind::Yaml)
    }
}

/// The kind of a file by its name, if it holds documents.
pub(super) fn text_kind(name: &str) -> Option<TextKind> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        Some(TextKind::Yaml)
    } else if lower.ends_with(".json") {
        Some(TextKind::Json)
    } else {
        None
    }
}

/// One entry of an archive, as the reader sees it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Member {
    /// A file of documents.
    Text {
        path: String,
        kind: TextKind,
        bytes: Vec<u8>,
    },
    /// Read past on purpose (a README, macOS metadata).
    Skipped { path: String, why: Skip },
    /// Hostile or unreadable: the bundle is invalid.
    Refused { path: String, why: MemberProblem },
}

/// Why a member holds no documents to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Skip {
    #[error("skipped: macOS metadata file")]
    MacMetadata,
    #[error("skipped: not a .yaml, .yml or .json file")]
    NotDocuments,
}

/// Why a member makes the whole bundle invalid.
#[derive(Debug, thiserror::Error)]
pub(super) enum MemberProblem {
    #[error("member path is not UTF-8")]
    PathNotUtf8,
    #[error("member has an empty path")]
    EmptyPath,
    #[error("member path is absolute")]
    AbsolutePath,
    #[error("member path contains '..'")]
    ClimbingPath,
    #[error("member path contains control characters")]
    ControlCharacters,
    #[error("member is {0}; only regular files are allowed")]
    NotRegularFile(EntryKind),
    #[error("cannot read member: {0}")]
    Unreadable(#[source] io::Error),
    #[error("member is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
}

/// Problems are compared by what they say: an I/O error has no equality of its own.
impl PartialEq for MemberProblem {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for MemberProblem {}

/// The kinds of tar entry that are not regular files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum EntryKind {
    #[error("a symbolic link")]
    SymbolicLink,
    #[error("a hard link")]
    HardLink,
    #[error("a device")]
    Device,
    #[error("a FIFO")]
    Fifo,
    #[error("not a regular file")]
    Other,
}

/// Why an archive as a whole cannot be read; the members seen before it were handed over.
#[derive(Debug, thiserror::Error)]
pub(super) enum ArchiveError {
    #[error("archive expands to more than {limit} bytes; split it into several bundles")]
    TooLarge { limit: u64 },
    #[error("archive holds more than {limit} members")]
    TooManyMembers { limit: usize },
    #[error("cannot read archive: {0}")]
    Unreadable(#[source] io::Error),
}

/// Walks an archive's members. `Err` means the archive as a whole could not be read (corrupt,
/// too large, too many members); members seen before that were already handed over.
pub(super) fn read_archive(
    bytes: &[u8],
    limits: &Limits,
    mut visit: impl FnMut(Member) -> ControlFlow<()>,
) -> Result<(), ArchiveError> {
    let produced = Cell::new(0u64);
    let stream = Counted {
        inner: GzDecoder::new(bytes).take(limits.max_uncompressed_bytes.saturating_add(1)),
        count: &produced,
    };
    let too_large = || ArchiveError::TooLarge {
        limit: limits.max_uncompressed_bytes,
    };
    let unreadable = |err: io::Error| {
        if produced.get() > limits.max_uncompressed_bytes {
            too_large()
        } else {
            ArchiveError::Unreadable(err)
        }
    };

    let mut archive = tar::Archive::new(stream);
    let mut seen = 0usize;
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        seen += 1;
        if seen > limits.max_members {
            return Err(ArchiveError::TooManyMembers {
                limit: limits.max_members,
            });
        }
        let member = member_of(&mut entry, limits);
        // A member cut short by the expansion cap must not be read as if it were whole.
        if produced.get() > limits.max_uncompressed_bytes {
            return Err(too_large());
        }
        if let Some(member) = member
            && visit(member).is_break()
        {
            return Ok(());
        }
    }
    // The tar stream ends before the gzip trailer: read on so a truncated or corrupted
    // upload fails its checksum instead of passing for a shorter archive.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(unreadable)?;
    if produced.get() > limits.max_uncompressed_bytes {
        return Err(too_large());
    }
    Ok(())
}

/// Classifies one entry and reads it when it holds documents; `None` for entries that carry
/// no content of their own (directories, global PAX headers).
fn member_of<R: Read>(entry: &mut tar::Entry<'_, R>, limits: &Limits) -> Option<Member> {
    let entry_type = entry.header().entry_type();
    if entry_type.is_pax_global_extensions() {
        return None;
    }
    let path = match String::from_utf8(entry.path_bytes().into_owned()) {
        Ok(path) => path,
        Err(err) => {
            return Some(Member::Refused {
                path: String::from_utf8_lossy(err.as_bytes()).into_owned(),
                why: MemberProblem::PathNotUtf8,
            });
        }
    };
    if let Some(why) = path_problem(&path) {
        return Some(Member::Refused { path, why });
    }
    let path = normalize(&path);

    if entry_type.is_dir() {
        return None;
    }
    if !(entry_type.is_file() || entry_type.is_contiguous()) {
        let what = if entry_type.is_symlink() {
            EntryKind::SymbolicLink
        } else if entry_type.is_hard_link() {
            EntryKind::HardLink
        } else if entry_type.is_character_special() || entry_type.is_block_special() {
            EntryKind::Device
        } else if entry_type.is_fifo() {
            EntryKind::Fifo
        } else {
            EntryKind::Other
        };
        return Some(Member::Refused {
            path,
            why: MemberProblem::NotRegularFile(what),
        });
    }

    let name = path.rsplit('/').next().unwrap_or(&path);
    if name.starts_with("._") {
        return Some(Member::Skipped {
            path,
            why: Skip::MacMetadata,
        });
    }
    let Some(kind) = text_kind(name) else {
        return Some(Member::Skipped {
            path,
            why: Skip::NotDocuments,
        });
    };

    // The member's size as its header gives it (the tar reader yields exactly that many
    // bytes): the one to report, since what is read stops one byte past the cap.
    let size = entry.size();
    let mut bytes = Vec::new();
    let read = entry
        .take(limits.max_member_bytes.saturating_add(1))
        .read_to_end(&mut bytes);
    match read {
        Err(err) => Some(Member::Refused {
            path,
            why: MemberProblem::Unreadable(err),
        }),
        Ok(_) if bytes.len() as u64 > limits.max_member_bytes => Some(Member::Refused {
            path,
            why: MemberProblem::TooLarge {
                size: size.max(bytes.len() as u64),
                limit: limits.max_member_bytes,
            },
        }),
        Ok(_) => Some(Member::Text { path, kind, bytes }),
    }
}

/// Paths that could land outside a directory the archive is unpacked into are refused, even
/// though this reader unpacks nothing: someone else may, and such a path is never innocent.
fn path_problem(path: &str) -> Option<MemberProblem> {
    if path.is_empty() {
        return Some(MemberProblem::EmptyPath);
    }
    if path.starts_with('/') || path.starts_with('\\') || has_drive_prefix(path) {
        return Some(MemberProblem::AbsolutePath);
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return Some(MemberProblem::ClimbingPath);
    }
    if path.chars().any(char::is_control) {
        return Some(MemberProblem::ControlCharacters);
    }
    None
}

fn has_drive_prefix(path: &str) -> bool {
    matches!(path.as_bytes(), [drive, b':', ..] if drive.is_ascii_alphabetic())
}

/// `./team/a.yaml` and `team//a.yaml` name the same file as `team/a.yaml`.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Counts the bytes the decompressor hands out, so the expansion cap can be told apart from a
/// corrupt archive when the stream ends early.
struct Counted<'c, R> {
    inner: R,
    count: &'c Cell<u64>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get().saturating_add(n as u64));
        Ok(n)
    }
}

#[cfg(test)]
pub(super) mod build {
    //! Archives for tests, including the hostile ones `tar::Builder` refuses to write.

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    pub enum Kind {
        File,
        Dir,
        Symlink(&'static str),
        HardLink(&'static str),
        CharDevice,
    }

    /// A raw ustar header: the name is written as given, `..` and leading `/` included.
    fn header(path: &str, kind: &Kind, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        {
            let name = &mut header.as_old_mut().name;
            let bytes = path.as_bytes();
            let n = bytes.len().min(name.len());
            name[..n].copy_from_slice(&bytes[..n]);
        }
        let (entry_type, link) = match kind {
            Kind::File => (tar::EntryType::Regular, None),
            Kind::Dir => (tar::EntryType::Directory, None),
            Kind::Symlink(target) => (tar::EntryType::Symlink, Some(*target)),
            Kind::HardLink(target) => (tar::EntryType::Link, Some(*target)),
            Kind::CharDevice => (tar::EntryType::Char, None),
        };
        header.set_entry_type(entry_type);
        if let Some(target) = link {
            let field = &mut header.as_old_mut().linkname;
            field[..target.len()].copy_from_slice(target.as_bytes());
        }
        header.set_mode(0o644);
        header.set_size(size);
        header.set_cksum();
        header
    }

    pub fn tar(members: &[(&str, Kind, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in members {
            let size = if matches!(kind, Kind::File) {
                data.len() as u64
            } else {
                0
            };
            let header = header(path, kind, size);
            let data: &[u8] = if matches!(kind, Kind::File) {
                data
            } else {
                &[]
            };
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    pub fn tgz(members: &[(&str, Kind, &[u8])]) -> Vec<u8> {
        gzip(&tar(members))
    }
}

#[cfg(test)]
mod tests {
    use super::build::{Kind, tgz};
    use super::*;

    /// The members seen, and the archive's error in words.
    fn members(bytes: &[u8], limits: &Limits) -> (Vec<Member>, Result<(), String>) {
        let mut seen = Vec::new();
        let result = read_archive(bytes, limits, |m| {
            seen.push(m);
            ControlFlow::Continue(())
        });
        (seen, result.map_err(|e| e.to_string()))
    }

    #[test]
    fn kinds_come_from_the_key_then_the_bytes() {
        let yaml = BundleKind::Text(TextKind::Yaml);
        for (key, bytes, kind) in [
            ("a/b.yaml", &b""[..], yaml),
            ("a/b.YML", b"", yaml),
            ("b.json", b"", BundleKind::Text(TextKind::Json)),
            ("b.tar.gz", b"x", BundleKind::Archive),
            ("b.TGZ", b"x", BundleKind::Archive),
            ("b.tar", b"x", BundleKind::PlainTar),
            ("bundle", &[0x1f, 0x8b, 8], BundleKind::Archive),
            ("bundle", b"a: 1", yaml),
            ("bundle.txt", b"", yaml),
        ] {
            assert_eq!(bundle_kind(key, bytes), kind, "{key} {bytes:?}");
        }
    }

    #[test]
    fn reads_regular_files_and_skips_the_rest() {
        let bytes = tgz(&[
            ("./team/", Kind::Dir, b""),
            ("./team/a.yaml", Kind::File, b"a: 1\n"),
            ("b.JSON", Kind::File, b"{}"),
            ("README.md", Kind::File, b"# hi"),
            ("team/._a.yaml", Kind::File, b"\x00\x05"),
        ]);
        let (seen, result) = members(&bytes, &Limits::default());
        assert_eq!(result, Ok(()));
        assert_eq!(
            seen,
            vec![
                Member::Text {
                    path: "team/a.yaml".into(),
                    kind: TextKind::Yaml,
                    bytes: b"a: 1\n".to_vec()
                },
                Member::Text {
                    path: "b.JSON".into(),
                    kind: TextKind::Json,
                    bytes: b"{}".to_vec()
                },
                Member::Skipped {
                    path: "README.md".into(),
                    why: Skip::NotDocuments
                },
                Member::Skipped {
                    path: "team/._a.yaml".into(),
                    why: Skip::MacMetadata
                },
            ]
        );
        assert_eq!(
            Skip::NotDocuments.to_string(),
            "skipped: not a .yaml, .yml or .json file"
        );
        assert_eq!(
            Skip::MacMetadata.to_string(),
            "skipped: macOS metadata file"
        );
    }

    #[test]
    fn hostile_entries_are_refused_by_name() {
        let bytes = tgz(&[
            ("../evil.yaml", Kind::File, b"a: 1\n"),
            ("ok/../../evil.yaml", Kind::File, b"a: 1\n"),
            ("/etc/evil.yaml", Kind::File, b"a: 1\n"),
            ("link.yaml", Kind::Symlink("/etc/passwd"), b""),
            ("hard.yaml", Kind::HardLink("other.yaml"), b""),
            ("dev.yaml", Kind::CharDevice, b""),
            ("../up/", Kind::Dir, b""),
        ]);
        let (seen, result) = members(&bytes, &Limits::default());
        assert_eq!(result, Ok(()));
        let refused: Vec<(String, String)> = seen
            .into_iter()
            .map(|m| match m {
                Member::Refused { path, why } => (path, why.to_string()),
                other => panic!("not refused: {other:?}"),
            })
            .collect();
        assert_eq!(
            refused,
            vec![
                ("../evil.yaml".into(), "member path contains '..'".into()),
                (
                    "ok/../../evil.yaml".into(),
                    "member path contains '..'".into()
                ),
                ("/etc/evil.yaml".into(), "member path is absolute".into()),
                (
                    "link.yaml".into(),
                    "member is a symbolic link; only regular files are allowed".into()
                ),
                (
                    "hard.yaml".into(),
                    "member is a hard link; only regular files are allowed".into()
                ),
                (
                    "dev.yaml".into(),
                    "member is a device; only regular files are allowed".into()
                ),
                ("../up/".into(), "member path contains '..'".into()),
            ]
        );
    }

    #[test]
    fn oversized_members_are_refused_while_reading() {
        let big = vec![b'#'; 2000];
        let bytes = tgz(&[
            ("big.yaml", Kind::File, &big),
            ("small.yaml", Kind::File, b"a: 1\n"),
        ]);
        let limits = Limits {
            max_member_bytes: 1000,
            ..Limits::default()
        };
        let (seen, result) = members(&bytes, &limits);
        assert_eq!(result, Ok(()));
        assert_eq!(
            seen[0],
            Member::Refused {
                path: "big.yaml".into(),
                why: MemberProblem::TooLarge {
                    size: 2000,
                    limit: 1000
                }
            }
        );
        let Member::Refused { why, .. } = &seen[0] else {
            unreachable!()
        };
        assert_eq!(
            why.to_string(),
            "member is 2000 bytes, more than the limit of 1000 bytes"
        );
        assert!(matches!(&seen[1], Member::Text { path, .. } if path == "small.yaml"));
    }

    #[test]
    fn expansion_is_capped_whatever_the_headers_say() {
        // Compresses to a few KiB, expands to 4 MiB.
        let zeros = vec![b'\n'; 4 * 1024 * 1024];
        let bytes = tgz(&[("a.yaml", Kind::File, &zeros)]);
        assert!(bytes.len() < 64 * 1024, "{}", bytes.len());
        let limits = Limits {
            max_uncompressed_bytes: 1024 * 1024,
            max_member_bytes: 8 * 1024 * 1024,
            ..Limits::default()
        };
        let (seen, result) = members(&bytes, &limits);
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(
            result,
            Err("archive expands to more than 1048576 bytes; split it into several bundles".into())
        );
    }

    #[test]
    fn too_many_members_stop_the_archive() {
        let names: Vec<String> = (0..5).map(|i| format!("m{i}.yaml")).collect();
        let list: Vec<(&str, Kind, &[u8])> = names
            .iter()
            .map(|n| (n.as_str(), Kind::File, &b"a: 1\n"[..]))
            .collect();
        let limits = Limits {
            max_members: 3,
            ..Limits::default()
        };
        let (seen, result) = members(&tgz(&list), &limits);
        assert_eq!(seen.len(), 3);
        assert_eq!(result, Err("archive holds more than 3 members".into()));
    }

    #[test]
    fn corrupt_archives_are_errors_not_panics() {
        let good = tgz(&[("a.yaml", Kind::File, b"a: 1\n")]);
        for cut in [2, 10, good.len() / 2, good.len() - 4] {
            let (_, result) = members(&good[..cut], &Limits::default());
            let err = result.unwrap_err();
            assert!(err.starts_with("cannot read archive: "), "{err}");
        }
        let (_, result) = members(b"\x1f\x8bnot gzip at all", &Limits::default());
        assert!(result.unwrap_err().starts_with("cannot read archive: "));
        // A valid gzip stream that is not a tar.
        let (_, result) = members(&build::gzip(&[b'x'; 1024]), &Limits::default());
        assert!(result.unwrap_err().starts_with("cannot read archive: "));
    }

    #[test]
    fn paths_are_normalized_and_checked() {
        assert_eq!(normalize("./a//b/./c.yaml"), "a/b/c.yaml");
        let problem = |path: &str| path_problem(path).map(|p| p.to_string());
        assert_eq!(
            problem("C:/x.yaml").as_deref(),
            Some("member path is absolute")
        );
        assert_eq!(
            problem("a\\..\\..\\x.yaml").as_deref(),
            Some("member path contains '..'")
        );
        assert_eq!(path_problem("a..b/x.yaml"), None);
        assert_eq!(problem(""), Some("member has an empty path".into()));
    }
}
