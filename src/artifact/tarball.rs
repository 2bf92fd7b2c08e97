//! The `.tar.gz` container of an artifact: written so that the same files always give the same
//! bytes, and read so that a hostile archive is refused before any of it reaches the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use flate2::bufread::GzDecoder;
use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

use super::{ArtifactError, CONFIG, MANIFEST, PLAN_BINARY, PLAN_JSON, ROOT};
use crate::render::TreeFile;

/// The modification time of every entry: a fixed moment, as cargo does for `.crate` files. Not
/// 0, because some tools warn about (or mishandle) a time stamp of 1970-01-01.
const MTIME: u64 = 1_153_704_088;

/// The gzip header's operating system byte: "unknown", so the bytes do not depend on the host.
const OS_UNKNOWN: u8 = 255;

/// One file to pack.
pub(super) struct PackFile<'a> {
    pub path: String,
    pub content: &'a [u8],
    pub executable: bool,
}

/// Packs `files` into a `.tar.gz` whose bytes depend only on the paths, contents and executable
/// flags: entries sorted by path, no directory entries, GNU headers (with the GNU long-name
/// extension for paths of 100 bytes or more) owned by 0:0 with no user or group name, a fixed
/// time and mode 644 or 755; gzip at the best level with no file name, time 0 and an unknown OS.
///
/// # Panics
/// If a path is absolute or has a `..` component (which `tar` refuses): paths come from a
/// [`crate::render::Tree`], whose paths are plain names (see `render::tree::is_plain_path`).
pub(super) fn pack(mut files: Vec<PackFile<'_>>) -> Vec<u8> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(Vec::new());
    for file in &files {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_size(file.content.len() as u64);
        header.set_mode(if file.executable { 0o755 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        builder
            .append_data(&mut header, &file.path, file.content)
            .unwrap_or_else(|e| panic!("cannot pack `{}` into an artifact: {e}", file.path));
    }
    let tar = builder.into_inner().expect("writing to memory does not fail");
    let mut gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(OS_UNKNOWN)
        .write(Vec::with_capacity(tar.len() / 4), Compression::best());
    gzip.write_all(&tar).expect("writing to memory does not fail");
    gzip.finish().expect("writing to memory does not fail")
}

/// Why an entry of an archive was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsafeReason {
    Absolute,
    ParentDir,
    /// An empty or `.` component: `a//b`, `./a`, `a/`.
    NotNormal,
    NotUtf8,
    Symlink,
    HardLink,
    Device,
    Fifo,
    /// Any other entry type, by its type byte.
    OtherType(u8),
    Duplicate,
    /// Not under `root/` and not one of the other files an artifact holds.
    Outside,
    /// A file mode other than 644 and 755 (setuid, world-writable, ...).
    Mode(u32),
}

impl fmt::Display for UnsafeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absolute => write!(f, "an absolute path"),
            Self::ParentDir => write!(f, "a `..` component"),
            Self::NotNormal => write!(f, "an empty or `.` path component"),
            Self::NotUtf8 => write!(f, "a path that is not UTF-8"),
            Self::Symlink => write!(f, "a symbolic link"),
            Self::HardLink => write!(f, "a hard link"),
            Self::Device => write!(f, "a device file"),
            Self::Fifo => write!(f, "a FIFO"),
            Self::OtherType(byte) => write!(f, "an entry of unsupported type `{}`", byte.escape_ascii()),
            Self::Duplicate => write!(f, "a second entry with the same path"),
            Self::Outside => {
                write!(f, "outside `{ROOT}`, `plan/`, `{CONFIG}` and `{MANIFEST}`")
            }
            Self::Mode(mode) => write!(f, "file mode `{mode:o}` (only `644` and `755` are allowed)"),
        }
    }
}

/// Unpacks the `.tar.gz` bytes of the artifact at `path` into memory, refusing the whole archive
/// at its first unsafe entry, and refusing it outright when it unpacks to more than `limit`
/// bytes (a decompression bomb). Directory entries are checked, then dropped.
pub(super) fn unpack(path: &Path, compressed: &[u8], limit: u64) -> Result<BTreeMap<String, TreeFile>, ArtifactError> {
    let not_an_artifact = |what: &str, e: std::io::Error| ArtifactError::NotAnArtifact {
        path: path.to_path_buf(),
        reason: format!("it is not {what} ({e})"),
    };
    // All of the tar stream is read first, through a limit, so that no header can make the
    // reader allocate or loop beyond it.
    let mut tar = Vec::new();
    let mut gzip = GzDecoder::new(compressed);
    (&mut gzip)
        .take(limit.saturating_add(1))
        .read_to_end(&mut tar)
        .map_err(|e| not_an_artifact("gzip-compressed", e))?;
    if tar.len() as u64 > limit {
        return Err(ArtifactError::TooLarge { path: path.to_path_buf(), limit });
    }
    // One gzip member and nothing after it: other tools (`tar`, Python's tarfile) read on into
    // a second member, which would smuggle in files the manifest never saw.
    if !gzip.into_inner().is_empty() {
        return Err(ArtifactError::NotAnArtifact {
            path: path.to_path_buf(),
            reason: "it has data after its gzip stream (a second member?)".into(),
        });
    }

    let not_tar = |e| not_an_artifact("a tar archive", e);
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut seen = BTreeSet::new();
    let mut files = BTreeMap::new();
    // Where the last entry's data ends in the tar stream.
    let mut end = 0;
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        // `path_bytes` is the full name, from a GNU long-name or PAX header where there is one.
        let name = entry.path_bytes().into_owned();
        let refuse = |reason| ArtifactError::UnsafePath {
            path: path.to_path_buf(),
            entry: String::from_utf8_lossy(&name).into_owned(),
            reason,
        };
        let is_dir = match entry.header().entry_type() {
            EntryType::Regular => false,
            EntryType::Directory => true,
            EntryType::Symlink => return Err(refuse(UnsafeReason::Symlink)),
            EntryType::Link => return Err(refuse(UnsafeReason::HardLink)),
            EntryType::Char | EntryType::Block => return Err(refuse(UnsafeReason::Device)),
            EntryType::Fifo => return Err(refuse(UnsafeReason::Fifo)),
            other => return Err(refuse(UnsafeReason::OtherType(other.as_byte()))),
        };
        let normal = normal_path(&name, is_dir).map_err(refuse)?;
        if !seen.insert(normal.clone()) {
            return Err(refuse(UnsafeReason::Duplicate));
        }
        if is_dir {
            if !(normal == "root" || normal == "plan" || normal.starts_with(ROOT)) {
                return Err(refuse(UnsafeReason::Outside));
            }
            end = entry.raw_file_position() + entry.size();
            continue;
        }
        if !([CONFIG, MANIFEST, PLAN_BINARY, PLAN_JSON].contains(&normal.as_str()) || normal.starts_with(ROOT)) {
            return Err(refuse(UnsafeReason::Outside));
        }
        let executable = match entry.header().mode().map_err(not_tar)? & 0o7777 {
            0o644 => false,
            0o755 => true,
            other => return Err(refuse(UnsafeReason::Mode(other))),
        };
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(not_tar)?;
        end = entry.raw_file_position() + content.len() as u64;
        files.insert(normal, TreeFile { content: content.into(), executable });
    }
    // After the last entry, only the end-of-archive blocks: zeros. A reader that skips them
    // (`tar --ignore-zeros`) must find nothing more.
    let rest = tar.get(usize::try_from(end).unwrap_or(usize::MAX)..).unwrap_or_default();
    if rest.iter().any(|&b| b != 0) {
        return Err(ArtifactError::NotAnArtifact {
            path: path.to_path_buf(),
            reason: "it has data after the end of its tar archive".into(),
        });
    }
    Ok(files)
}

/// The entry name as a relative `/`-separated path with only normal components (a directory's
/// trailing `/` dropped), or why it is not one.
fn normal_path(name: &[u8], is_dir: bool) -> Result<String, UnsafeReason> {
    let text = std::str::from_utf8(name).map_err(|_| UnsafeReason::NotUtf8)?;
    let text = if is_dir { text.strip_suffix('/').unwrap_or(text) } else { text };
    if text.starts_with('/') {
        return Err(UnsafeReason::Absolute);
    }
    if text.split('/').any(|component| component == "..") {
        return Err(UnsafeReason::ParentDir);
    }
    if text.split('/').any(|component| component.is_empty() || component == ".") {
        return Err(UnsafeReason::NotNormal);
    }
    Ok(text.to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const LIMIT: u64 = 1 << 20;

    /// Gzips a tar stream the way [`pack`] does.
    pub(in crate::artifact) fn gzip(tar: &[u8]) -> Vec<u8> {
        let mut gzip = GzBuilder::new().mtime(0).write(Vec::new(), Compression::best());
        gzip.write_all(tar).unwrap();
        gzip.finish().unwrap()
    }

    /// A `.tar.gz` whose entries have exactly these names, types and modes: the name bytes go
    /// straight into the header, because `tar`'s `set_path` (rightly) refuses the bad ones.
    pub(in crate::artifact) fn raw_archive(entries: &[(&[u8], EntryType, u32, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, mode, data) in entries {
            let mut header = Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(*mode);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        gzip(&builder.into_inner().unwrap())
    }

    fn refusal(entries: &[(&[u8], EntryType, u32, &[u8])]) -> (String, UnsafeReason) {
        match unpack(Path::new("evil.tar.gz"), &raw_archive(entries), LIMIT) {
            Err(ArtifactError::UnsafePath { entry, reason, .. }) => (entry, reason),
            other => panic!("expected an unsafe path, got {other:?}"),
        }
    }

    fn file(name: &[u8]) -> (&[u8], EntryType, u32, &[u8]) {
        (name, EntryType::Regular, 0o644, b"x")
    }

    #[test]
    fn refuses_absolute_paths() {
        assert_eq!(refusal(&[file(b"/etc/passwd")]), ("/etc/passwd".into(), UnsafeReason::Absolute));
    }

    #[test]
    fn refuses_parent_components() {
        assert_eq!(refusal(&[file(b"root/../../x")]), ("root/../../x".into(), UnsafeReason::ParentDir));
        assert_eq!(
            refusal(&[(b"root/../", EntryType::Directory, 0o755, b"")]),
            ("root/../".into(), UnsafeReason::ParentDir)
        );
    }

    #[test]
    fn refuses_empty_and_dot_components() {
        assert_eq!(refusal(&[file(b"./root/a.tf")]).1, UnsafeReason::NotNormal);
        assert_eq!(refusal(&[file(b"root//a.tf")]).1, UnsafeReason::NotNormal);
        assert_eq!(refusal(&[file(b"root/a.tf/")]).1, UnsafeReason::NotNormal);
    }

    #[test]
    fn refuses_paths_that_are_not_utf8() {
        assert_eq!(refusal(&[file(b"root/\xff.tf")]).1, UnsafeReason::NotUtf8);
    }

    #[test]
    fn refuses_links_devices_and_other_types() {
        let entry = |kind| (b"root/a.tf".as_slice(), kind, 0o644, b"".as_slice());
        assert_eq!(refusal(&[entry(EntryType::Symlink)]).1, UnsafeReason::Symlink);
        assert_eq!(refusal(&[entry(EntryType::Link)]).1, UnsafeReason::HardLink);
        assert_eq!(refusal(&[entry(EntryType::Char)]).1, UnsafeReason::Device);
        assert_eq!(refusal(&[entry(EntryType::Block)]).1, UnsafeReason::Device);
        assert_eq!(refusal(&[entry(EntryType::Fifo)]).1, UnsafeReason::Fifo);
        assert_eq!(refusal(&[entry(EntryType::new(b'Z'))]).1, UnsafeReason::OtherType(b'Z'));
    }

    #[test]
    fn refuses_duplicate_paths() {
        assert_eq!(
            refusal(&[file(b"root/a.tf"), file(b"root/b.tf"), file(b"root/a.tf")]),
            ("root/a.tf".into(), UnsafeReason::Duplicate)
        );
    }

    #[test]
    fn refuses_paths_outside_the_artifact_layout() {
        assert_eq!(refusal(&[file(b"main.tf")]).1, UnsafeReason::Outside);
        assert_eq!(refusal(&[file(b"plan/other.json")]).1, UnsafeReason::Outside);
        assert_eq!(refusal(&[file(b"rootkit/a.tf")]).1, UnsafeReason::Outside);
        assert_eq!(refusal(&[(b"etc/", EntryType::Directory, 0o755, b"")]).1, UnsafeReason::Outside);
    }

    #[test]
    fn refuses_unusual_modes() {
        assert_eq!(refusal(&[(b"root/a.sh", EntryType::Regular, 0o4755, b"x")]).1, UnsafeReason::Mode(0o4755));
        assert_eq!(refusal(&[(b"root/a.tf", EntryType::Regular, 0o666, b"x")]).1, UnsafeReason::Mode(0o666));
    }

    #[test]
    fn accepts_directories_and_the_artifact_layout() {
        let bytes = raw_archive(&[
            (b"root/", EntryType::Directory, 0o755, b""),
            (b"root/modules/", EntryType::Directory, 0o755, b""),
            (b"root/modules/a.tf", EntryType::Regular, 0o644, b"a"),
            (b"root/run.sh", EntryType::Regular, 0o755, b"#!/bin/sh\n"),
            (b"plan/", EntryType::Directory, 0o755, b""),
            file(b"plan/plan.json"),
            file(b"plan/plan.tfplan"),
            file(b"config.json"),
            file(b"manifest.json"),
        ]);
        let files = unpack(Path::new("ok.tar.gz"), &bytes, LIMIT).unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["config.json", "manifest.json", "plan/plan.json", "plan/plan.tfplan", "root/modules/a.tf", "root/run.sh"]
        );
        assert!(files["root/run.sh"].executable);
        assert!(!files["root/modules/a.tf"].executable);
    }

    #[test]
    fn refuses_an_archive_that_unpacks_beyond_the_limit() {
        // Zeros compress about a thousandfold: the point of a decompression bomb.
        let big = vec![0; 4096];
        let bytes = raw_archive(&[(b"root/big.tf", EntryType::Regular, 0o644, &big)]);
        assert!(bytes.len() < 1024);
        let err = unpack(Path::new("bomb.tar.gz"), &bytes, 4096).unwrap_err();
        assert!(matches!(err, ArtifactError::TooLarge { limit: 4096, .. }), "{err:?}");
    }

    #[test]
    fn refuses_bytes_that_are_not_a_tar_gz() {
        let err = unpack(Path::new("x.tar.gz"), b"plain text", LIMIT).unwrap_err();
        assert!(err.to_string().starts_with("`x.tar.gz` is not a Stamp artifact: it is not gzip-compressed"), "{err}");
        let err = unpack(Path::new("x.tar.gz"), &gzip(&[7; 1024]), LIMIT).unwrap_err();
        assert!(err.to_string().starts_with("`x.tar.gz` is not a Stamp artifact: it is not a tar archive"), "{err}");
    }

    #[test]
    fn refuses_a_second_gzip_member_and_data_after_the_archive() {
        let good = raw_archive(&[file(b"root/a.tf")]);
        assert!(unpack(Path::new("ok.tar.gz"), &good, LIMIT).is_ok());
        let mut smuggled = good.clone();
        smuggled.extend(raw_archive(&[file(b"root/smuggled.tf")]));
        let err = unpack(Path::new("two.tar.gz"), &smuggled, LIMIT).unwrap_err();
        assert!(err.to_string().contains("data after its gzip stream"), "{err}");
        let mut garbage = good;
        garbage.push(0);
        assert!(unpack(Path::new("tail.tar.gz"), &garbage, LIMIT).is_err());
        // A tar stream with an entry hidden after its end-of-archive blocks.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_path("root/a.tf").unwrap();
        header.set_cksum();
        builder.append(&header, b"x".as_slice()).unwrap();
        let mut stream = builder.into_inner().unwrap();
        let hidden = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = header.clone();
            h.set_path("root/hidden.tf").unwrap();
            h.set_cksum();
            b.append(&h, b"y".as_slice()).unwrap();
            b.into_inner().unwrap()
        };
        stream.extend(hidden);
        let err = unpack(Path::new("hidden.tar.gz"), &gzip(&stream), LIMIT).unwrap_err();
        assert!(err.to_string().contains("after the end of its tar archive"), "{err}");
    }

    #[test]
    fn long_paths_round_trip() {
        let path = format!("root/{}/main.tf", "module".repeat(30));
        let bytes = pack(vec![PackFile { path: path.clone(), content: b"x", executable: false }]);
        let files = unpack(Path::new("long.tar.gz"), &bytes, LIMIT).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), [&path]);
    }
}
