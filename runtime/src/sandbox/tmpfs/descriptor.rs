//! An open `/tmp` file or directory, and every wasi:filesystem operation on
//! one, shared by the wasi 0.2 and 0.3 adapters (`p2`, `p3`). Operations
//! speak the wasi:filesystem@0.2 types the tree uses; the 0.3 adapter
//! converts them.
//!
//! A descriptor lives in the instance's resource table next to
//! wasmtime-wasi's own (the read-only `dirs`): both interface versions name
//! descriptors with wasmtime-wasi's `Descriptor` resource type, and which
//! kind a handle names is the type of its table entry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::component::{HasData, Resource, ResourceTableError};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode, MetadataHashValue,
    OpenFlags,
};

use crate::sandbox::tmpfs::file::{Cursor, File};
use crate::sandbox::tmpfs::tree::{Dir, Node, Tree, lookup};

/// Where the in-memory tree is mounted in every instance.
pub const TMP: &str = "/tmp";

/// The most one `read` returns, as wasmtime-wasi caps its own.
pub const MAX_READ: usize = 64 << 10;

/// What the linked interfaces see of a `Store`'s data.
pub struct WispFs;

impl HasData for WispFs {
    type Data<'a> = WispFsView<'a>;
}

pub struct WispFsView<'a> {
    pub wasi: WasiFilesystemCtxView<'a>,
    pub tree: &'a Tree,
}

impl WispFsView<'_> {
    /// The `/tmp` descriptor `fd` names; `None`: one of wasmtime-wasi's.
    pub fn tmp(
        &mut self,
        fd: &Resource<Descriptor>,
    ) -> Result<Option<TmpDescriptor>, ResourceTableError> {
        let entry = self.wasi.table.get_any_mut(fd.rep())?;
        Ok(entry.downcast_ref::<TmpDescriptor>().cloned())
    }

    pub fn push(
        &mut self,
        descriptor: TmpDescriptor,
    ) -> Result<Resource<Descriptor>, ResourceTableError> {
        let fd = self.wasi.table.push(descriptor)?;
        Ok(Resource::new_own(fd.rep()))
    }

    /// A descriptor of the root of `/tmp`, for the preopens.
    pub fn push_root(&mut self) -> Result<(Resource<Descriptor>, String), ResourceTableError> {
        let root = TmpDescriptor {
            node: Node::Dir(self.tree.root.clone()),
            flags: DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
        };
        Ok((self.push(root)?, TMP.to_owned()))
    }

    /// Drops `fd` if it is a `/tmp` descriptor; `false`: one of wasmtime-wasi's.
    pub fn drop_tmp(&mut self, fd: &Resource<Descriptor>) -> Result<bool, ResourceTableError> {
        if !self.wasi.table.get_any_mut(fd.rep())?.is::<TmpDescriptor>() {
            return Ok(false);
        }
        self.wasi
            .table
            .delete(Resource::<TmpDescriptor>::new_own(fd.rep()))?;
        Ok(true)
    }
}

/// An open `/tmp` file or directory.
#[derive(Clone)]
pub struct TmpDescriptor {
    node: Node,
    flags: DescriptorFlags,
}

impl TmpDescriptor {
    fn dir(&self) -> Result<&Arc<Dir>, ErrorCode> {
        match &self.node {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(ErrorCode::NotDirectory),
        }
    }

    fn file(&self) -> Result<&Arc<File>, ErrorCode> {
        match &self.node {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(ErrorCode::IsDirectory),
        }
    }

    /// The file, if this descriptor was opened with `access`.
    fn file_for(&self, access: DescriptorFlags) -> Result<&Arc<File>, ErrorCode> {
        let file = self.file()?;
        if !self.flags.contains(access) {
            return Err(ErrorCode::BadDescriptor);
        }
        Ok(file)
    }

    /// The node `path` names from this directory.
    fn at(&self, path: &str) -> Result<Node, ErrorCode> {
        lookup(self.dir()?, path)?.node().ok_or(ErrorCode::NoEntry)
    }

    pub fn flags(&self) -> DescriptorFlags {
        self.flags
    }

    pub fn kind(&self) -> DescriptorType {
        self.node.kind()
    }

    /// `advise` is accepted, and ignored, on files.
    pub fn advise(&self) -> Result<(), ErrorCode> {
        self.file().map(|_| ())
    }

    pub fn set_size(&self, size: u64) -> Result<(), ErrorCode> {
        self.file_for(DescriptorFlags::WRITE)?.set_size(size)
    }

    pub fn set_times(&self, access: Option<SystemTime>, modify: Option<SystemTime>) {
        self.node.set_times(access, modify);
    }

    /// Up to `len` bytes (at most [`MAX_READ`]) from `offset`, and whether
    /// the end was reached.
    pub fn read(&self, len: u64, offset: u64) -> Result<(Vec<u8>, bool), ErrorCode> {
        let file = self.file_for(DescriptorFlags::READ)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let bytes = file.read_at(offset, len.min(MAX_READ));
        let end = bytes.is_empty();
        Ok((bytes, end))
    }

    /// Writes all of `bytes` at `offset`; returns how many were written.
    pub fn write(&self, bytes: &[u8], offset: u64) -> Result<u64, ErrorCode> {
        self.file_for(DescriptorFlags::WRITE)?
            .write_at(Some(offset), bytes)?;
        Ok(bytes.len() as u64)
    }

    /// A reading cursor from `offset`.
    pub fn reader(&self, offset: u64) -> Result<Cursor, ErrorCode> {
        let file = self.file_for(DescriptorFlags::READ)?.clone();
        Ok(Cursor::new(file, Some(offset)))
    }

    /// A writing cursor from `offset`, or appending (`None`).
    pub fn writer(&self, offset: Option<u64>) -> Result<Cursor, ErrorCode> {
        let file = self.file_for(DescriptorFlags::WRITE)?.clone();
        Ok(Cursor::new(file, offset))
    }

    /// The directory's entries when it is read.
    pub fn list(&self) -> Result<Vec<DirectoryEntry>, ErrorCode> {
        Ok(self.dir()?.list())
    }

    pub fn create_directory_at(&self, tree: &Tree, path: &str) -> Result<(), ErrorCode> {
        tree.create_dir(self.dir()?, path)
    }

    pub fn stat(&self) -> DescriptorStat {
        stat(&self.node)
    }

    pub fn stat_at(&self, path: &str) -> Result<DescriptorStat, ErrorCode> {
        Ok(stat(&self.at(path)?))
    }

    pub fn set_times_at(
        &self,
        path: &str,
        access: Option<SystemTime>,
        modify: Option<SystemTime>,
    ) -> Result<(), ErrorCode> {
        self.at(path)?.set_times(access, modify);
        Ok(())
    }

    pub fn open_at(
        &self,
        tree: &Tree,
        path: &str,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<TmpDescriptor, ErrorCode> {
        let node = tree.open(self.dir()?, path, oflags, flags)?;
        Ok(TmpDescriptor { node, flags })
    }

    /// `/tmp` has no symbolic links: a path that exists is `invalid`.
    pub fn readlink_at(&self, path: &str) -> Result<String, ErrorCode> {
        self.at(path)?;
        Err(ErrorCode::Invalid)
    }

    /// `remove-directory-at` (`dir`) or `unlink-file-at` (`!dir`).
    pub fn remove_at(&self, tree: &Tree, path: &str, dir: bool) -> Result<(), ErrorCode> {
        tree.remove(self.dir()?, path, dir)
    }

    pub fn rename_at(
        &self,
        tree: &Tree,
        old_path: &str,
        new: &TmpDescriptor,
        new_path: &str,
    ) -> Result<(), ErrorCode> {
        tree.rename(self.dir()?, old_path, new.dir()?, new_path)
    }

    pub fn is_same_object(&self, other: &TmpDescriptor) -> bool {
        self.node.same(&other.node)
    }

    pub fn metadata_hash(&self) -> MetadataHashValue {
        metadata_hash(&self.node)
    }

    pub fn metadata_hash_at(&self, path: &str) -> Result<MetadataHashValue, ErrorCode> {
        Ok(metadata_hash(&self.at(path)?))
    }
}

/// What happens when a call names one `/tmp` descriptor and one of
/// wasmtime-wasi's (`rename-at`, `link-at`): as between two mounts.
pub const ACROSS_MOUNTS: ErrorCode = ErrorCode::CrossDevice;

/// `symlink-at` and `link-at` within `/tmp`.
pub const NO_LINKS: ErrorCode = ErrorCode::Unsupported;

fn datetime(t: SystemTime) -> Option<Datetime> {
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    Some(Datetime {
        seconds: d.as_secs(),
        nanoseconds: d.subsec_nanos(),
    })
}

fn stat(node: &Node) -> DescriptorStat {
    let times = node.times();
    DescriptorStat {
        type_: node.kind(),
        link_count: 1,
        size: node.size(),
        data_access_timestamp: datetime(times.access),
        data_modification_timestamp: datetime(times.modify),
        status_change_timestamp: datetime(times.change),
    }
}

/// Equal for the same node with the same size and modification time.
fn metadata_hash(node: &Node) -> MetadataHashValue {
    let mut hasher = DefaultHasher::new();
    (node.ino(), node.size(), node.times().modify).hash(&mut hasher);
    MetadataHashValue {
        lower: hasher.finish(),
        upper: node.ino(),
    }
}
