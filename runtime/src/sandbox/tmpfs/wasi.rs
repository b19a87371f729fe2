//! wasi:filesystem@0.2 `types` and `preopens` for a Wisp instance: the
//! interfaces are wasmtime-wasi's own bindings (same WIT types, same
//! resource types), implemented here so a descriptor is either one of
//! wasmtime-wasi's (a read-only `dirs` preopen, or anything opened under it:
//! every call is handed to wasmtime-wasi's implementation unchanged) or a
//! [`TmpDescriptor`] in the instance's in-memory `/tmp`. Both live in the
//! instance's resource table; which one a handle names is the type of its
//! table entry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::component::{HasData, Resource, ResourceTableError};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry,
    DirectoryEntryStream, ErrorCode, Filesize, HostDescriptor, HostDirectoryEntryStream,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, FsError, FsResult};

use crate::sandbox::tmpfs::file::{File, Reader, Writer};
use crate::sandbox::tmpfs::tree::{Dir, Node, Tree};
use std::sync::Arc;

/// Where the in-memory tree is mounted in every instance.
pub const TMP: &str = "/tmp";

/// The most one `read` returns, as wasmtime-wasi caps its own.
const MAX_READ: usize = 64 << 10;

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
}

/// A `read-directory` of a `/tmp` directory: its entries when it was read.
struct TmpEntries(std::vec::IntoIter<DirectoryEntry>);

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
    fn tmp(
        &mut self,
        fd: &Resource<Descriptor>,
    ) -> Result<Option<TmpDescriptor>, ResourceTableError> {
        let entry = self.wasi.table.get_any_mut(fd.rep())?;
        Ok(entry.downcast_ref::<TmpDescriptor>().cloned())
    }

    fn push(&mut self, descriptor: TmpDescriptor) -> FsResult<Resource<Descriptor>> {
        let fd = self.wasi.table.push(descriptor)?;
        Ok(Resource::new_own(fd.rep()))
    }
}

fn datetime(t: SystemTime) -> Option<Datetime> {
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    Some(Datetime {
        seconds: d.as_secs(),
        nanoseconds: d.subsec_nanos(),
    })
}

fn timestamp(t: NewTimestamp) -> Result<Option<SystemTime>, ErrorCode> {
    match t {
        NewTimestamp::NoChange => Ok(None),
        NewTimestamp::Now => Ok(Some(SystemTime::now())),
        NewTimestamp::Timestamp(t) => {
            let nanos = Duration::from_nanos(u64::from(t.nanoseconds));
            UNIX_EPOCH
                .checked_add(Duration::from_secs(t.seconds))
                .and_then(|t| t.checked_add(nanos))
                .map(Some)
                .ok_or(ErrorCode::Overflow)
        }
    }
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

fn found(lookup: crate::sandbox::tmpfs::tree::Lookup) -> Result<Node, ErrorCode> {
    lookup.node().ok_or(ErrorCode::NoEntry)
}

impl preopens::Host for WispFsView<'_> {
    /// The function's `dirs`, then `/tmp`.
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut dirs = preopens::Host::get_directories(&mut self.wasi)?;
        let root = TmpDescriptor {
            node: Node::Dir(self.tree.root.clone()),
            flags: DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
        };
        let fd = self.wasi.table.push(root)?;
        dirs.push((Resource::new_own(fd.rep()), TMP.to_owned()));
        Ok(dirs)
    }
}

impl types::Host for WispFsView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.wasi, err)
    }

    /// `/tmp` streams fail with an `std::io::Error` carrying the errno, as
    /// wasmtime-wasi's file streams do, so its mapping serves both.
    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.wasi, err)
    }
}

impl HostDescriptor for WispFsView<'_> {
    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
        len: Filesize,
        advice: Advice,
    ) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.advise(fd, offset, len, advice).await,
            Some(d) => d.file().map(|_| ()).map_err(Into::into),
        }
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.sync_data(fd).await,
            Some(_) => Ok(()),
        }
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        match self.tmp(&fd)? {
            None => self.wasi.get_flags(fd).await,
            Some(d) => Ok(d.flags),
        }
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        match self.tmp(&fd)? {
            None => self.wasi.get_type(fd).await,
            Some(d) => Ok(d.node.kind()),
        }
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.set_size(fd, size).await,
            Some(d) => Ok(d.file_for(DescriptorFlags::WRITE)?.set_size(size)?),
        }
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.set_times(fd, atim, mtim).await,
            Some(d) => {
                d.node.set_times(timestamp(atim)?, timestamp(mtim)?);
                Ok(())
            }
        }
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: Filesize,
        offset: Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        match self.tmp(&fd)? {
            None => self.wasi.read(fd, len, offset).await,
            Some(d) => {
                let file = d.file_for(DescriptorFlags::READ)?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let bytes = file.read_at(offset, len.min(MAX_READ));
                let end = bytes.is_empty();
                Ok((bytes, end))
            }
        }
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: Filesize,
    ) -> FsResult<Filesize> {
        match self.tmp(&fd)? {
            None => self.wasi.write(fd, buf, offset).await,
            Some(d) => {
                let file = d.file_for(DescriptorFlags::WRITE)?;
                file.write_at(Some(offset), &buf)?;
                Ok(buf.len() as Filesize)
            }
        }
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DirectoryEntryStream>> {
        match self.tmp(&fd)? {
            None => self.wasi.read_directory(fd).await,
            Some(d) => {
                let entries = TmpEntries(d.dir()?.list().into_iter());
                let stream = self.wasi.table.push(entries)?;
                Ok(Resource::new_own(stream.rep()))
            }
        }
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.sync(fd).await,
            Some(_) => Ok(()),
        }
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.create_directory_at(fd, path).await,
            Some(d) => Ok(self.tree.create_dir(d.dir()?, &path)?),
        }
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        match self.tmp(&fd)? {
            None => self.wasi.stat(fd).await,
            Some(d) => Ok(stat(&d.node)),
        }
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        match self.tmp(&fd)? {
            None => self.wasi.stat_at(fd, path_flags, path).await,
            Some(d) => Ok(stat(&found(crate::sandbox::tmpfs::tree::lookup(
                d.dir()?,
                &path,
            )?)?)),
        }
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => {
                self.wasi
                    .set_times_at(fd, path_flags, path, atim, mtim)
                    .await
            }
            Some(d) => {
                let node = found(crate::sandbox::tmpfs::tree::lookup(d.dir()?, &path)?)?;
                node.set_times(timestamp(atim)?, timestamp(mtim)?);
                Ok(())
            }
        }
    }

    /// Hard links are not supported in `/tmp`, nor between `/tmp` and `dirs`.
    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        match (self.tmp(&fd)?, self.tmp(&new_descriptor)?) {
            (None, None) => {
                self.wasi
                    .link_at(fd, old_path_flags, old_path, new_descriptor, new_path)
                    .await
            }
            (Some(_), Some(_)) => Err(ErrorCode::Unsupported.into()),
            _ => Err(ErrorCode::CrossDevice.into()),
        }
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        match self.tmp(&fd)? {
            None => self.wasi.open_at(fd, path_flags, path, oflags, flags).await,
            Some(d) => {
                let node = self.tree.open(d.dir()?, &path, oflags, flags)?;
                self.push(TmpDescriptor { node, flags })
            }
        }
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        let entry = self.wasi.table.get_any_mut(fd.rep())?;
        if entry.is::<TmpDescriptor>() {
            self.wasi
                .table
                .delete(Resource::<TmpDescriptor>::new_own(fd.rep()))?;
            return Ok(());
        }
        HostDescriptor::drop(&mut self.wasi, fd)
    }

    /// `/tmp` has no symbolic links: a path that exists is `invalid`.
    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        match self.tmp(&fd)? {
            None => self.wasi.readlink_at(fd, path).await,
            Some(d) => {
                found(crate::sandbox::tmpfs::tree::lookup(d.dir()?, &path)?)?;
                Err(ErrorCode::Invalid.into())
            }
        }
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.remove_directory_at(fd, path).await,
            Some(d) => Ok(self.tree.remove(d.dir()?, &path, true)?),
        }
    }

    /// Within `/tmp`, or within wasmtime-wasi's directories; between the
    /// two, `cross-device` (as `rename` across mounts).
    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        match (self.tmp(&fd)?, self.tmp(&new_fd)?) {
            (None, None) => self.wasi.rename_at(fd, old_path, new_fd, new_path).await,
            (Some(old), Some(new)) => {
                Ok(self
                    .tree
                    .rename(old.dir()?, &old_path, new.dir()?, &new_path)?)
            }
            _ => Err(ErrorCode::CrossDevice.into()),
        }
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.symlink_at(fd, src_path, dest_path).await,
            Some(_) => Err(ErrorCode::Unsupported.into()),
        }
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.unlink_file_at(fd, path).await,
            Some(d) => Ok(self.tree.remove(d.dir()?, &path, false)?),
        }
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        let Some(d) = self.tmp(&fd)? else {
            return self.wasi.read_via_stream(fd, offset);
        };
        let reader: DynInputStream = Box::new(Reader {
            file: d.file_for(DescriptorFlags::READ)?.clone(),
            position: offset,
        });
        Ok(self.wasi.table.push(reader)?)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(d) = self.tmp(&fd)? else {
            return self.wasi.write_via_stream(fd, offset);
        };
        let writer: DynOutputStream = Box::new(Writer {
            file: d.file_for(DescriptorFlags::WRITE)?.clone(),
            position: Some(offset),
        });
        Ok(self.wasi.table.push(writer)?)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(d) = self.tmp(&fd)? else {
            return self.wasi.append_via_stream(fd);
        };
        let writer: DynOutputStream = Box::new(Writer {
            file: d.file_for(DescriptorFlags::WRITE)?.clone(),
            position: None,
        });
        Ok(self.wasi.table.push(writer)?)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        match (self.tmp(&a)?, self.tmp(&b)?) {
            (None, None) => self.wasi.is_same_object(a, b).await,
            (Some(a), Some(b)) => Ok(a.node.same(&b.node)),
            _ => Ok(false),
        }
    }

    async fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        match self.tmp(&fd)? {
            None => self.wasi.metadata_hash(fd).await,
            Some(d) => Ok(metadata_hash(&d.node)),
        }
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        match self.tmp(&fd)? {
            None => self.wasi.metadata_hash_at(fd, path_flags, path).await,
            Some(d) => Ok(metadata_hash(&found(crate::sandbox::tmpfs::tree::lookup(
                d.dir()?,
                &path,
            )?)?)),
        }
    }
}

impl HostDirectoryEntryStream for WispFsView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<DirectoryEntryStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        let entry = self.wasi.table.get_any_mut(stream.rep())?;
        match entry.downcast_mut::<TmpEntries>() {
            Some(entries) => Ok(entries.0.next()),
            None => self.wasi.read_directory_entry(stream).await,
        }
    }

    fn drop(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        let entry = self.wasi.table.get_any_mut(stream.rep())?;
        if entry.is::<TmpEntries>() {
            self.wasi
                .table
                .delete(Resource::<TmpEntries>::new_own(stream.rep()))?;
            return Ok(());
        }
        HostDirectoryEntryStream::drop(&mut self.wasi, stream)
    }
}
