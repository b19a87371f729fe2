//! wasi:filesystem@0.2 `types` and `preopens` for a Wisp instance: the
//! interfaces are wasmtime-wasi's own bindings (same WIT types, same
//! resource types), implemented here so a call on one of wasmtime-wasi's
//! descriptors (a read-only `dirs` preopen, or anything opened under it) is
//! handed to wasmtime-wasi's implementation unchanged, and a call on a
//! `/tmp` descriptor (`TmpDescriptor`) goes to the instance's in-memory `/tmp`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use wasmtime::component::Resource;
use wasmtime_wasi::async_trait;
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry,
    DirectoryEntryStream, ErrorCode, Filesize, HostDescriptor, HostDirectoryEntryStream,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, FsError, FsResult, InputStream, OutputStream, Pollable,
    StreamError, StreamResult,
};

use crate::sandbox::tmpfs::descriptor::{ACROSS_MOUNTS, NO_LINKS, WispFsView};
use crate::sandbox::tmpfs::file::Cursor;

/// The most a write stream accepts at once (what `check-write` grants).
const WRITE_PERMIT: usize = 64 << 10;

/// A `read-directory` of a `/tmp` directory: its entries when it was read.
struct TmpEntries(std::vec::IntoIter<DirectoryEntry>);

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

impl preopens::Host for WispFsView<'_> {
    /// The function's `dirs`, then `/tmp`.
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut dirs = preopens::Host::get_directories(&mut self.wasi)?;
        dirs.push(self.push_root()?);
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
            Some(d) => Ok(d.advise()?),
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
            Some(d) => Ok(d.flags()),
        }
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        match self.tmp(&fd)? {
            None => self.wasi.get_type(fd).await,
            Some(d) => Ok(d.kind()),
        }
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.set_size(fd, size).await,
            Some(d) => Ok(d.set_size(size)?),
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
                d.set_times(timestamp(atim)?, timestamp(mtim)?);
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
            Some(d) => Ok(d.read(len, offset)?),
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
            Some(d) => Ok(d.write(&buf, offset)?),
        }
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DirectoryEntryStream>> {
        match self.tmp(&fd)? {
            None => self.wasi.read_directory(fd).await,
            Some(d) => {
                let entries = TmpEntries(d.list()?.into_iter());
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
            Some(d) => Ok(d.create_directory_at(self.tree, &path)?),
        }
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        match self.tmp(&fd)? {
            None => self.wasi.stat(fd).await,
            Some(d) => Ok(d.stat()),
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
            Some(d) => Ok(d.stat_at(&path)?),
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
            Some(d) => Ok(d.set_times_at(&path, timestamp(atim)?, timestamp(mtim)?)?),
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
            (Some(_), Some(_)) => Err(NO_LINKS.into()),
            _ => Err(ACROSS_MOUNTS.into()),
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
                let opened = d.open_at(self.tree, &path, oflags, flags)?;
                Ok(self.push(opened)?)
            }
        }
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        if self.drop_tmp(&fd)? {
            return Ok(());
        }
        HostDescriptor::drop(&mut self.wasi, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        match self.tmp(&fd)? {
            None => self.wasi.readlink_at(fd, path).await,
            Some(d) => Ok(d.readlink_at(&path)?),
        }
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.remove_directory_at(fd, path).await,
            Some(d) => Ok(d.remove_at(self.tree, &path, true)?),
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
            (Some(old), Some(new)) => Ok(old.rename_at(self.tree, &old_path, &new, &new_path)?),
            _ => Err(ACROSS_MOUNTS.into()),
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
            Some(_) => Err(NO_LINKS.into()),
        }
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        match self.tmp(&fd)? {
            None => self.wasi.unlink_file_at(fd, path).await,
            Some(d) => Ok(d.remove_at(self.tree, &path, false)?),
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
        let reader: DynInputStream = Box::new(d.reader(offset)?);
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
        let writer: DynOutputStream = Box::new(d.writer(Some(offset))?);
        Ok(self.wasi.table.push(writer)?)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(d) = self.tmp(&fd)? else {
            return self.wasi.append_via_stream(fd);
        };
        let writer: DynOutputStream = Box::new(d.writer(None)?);
        Ok(self.wasi.table.push(writer)?)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        match (self.tmp(&a)?, self.tmp(&b)?) {
            (None, None) => self.wasi.is_same_object(a, b).await,
            (Some(a), Some(b)) => Ok(a.is_same_object(&b)),
            _ => Ok(false),
        }
    }

    async fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        match self.tmp(&fd)? {
            None => self.wasi.metadata_hash(fd).await,
            Some(d) => Ok(d.metadata_hash()),
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
            Some(d) => Ok(d.metadata_hash_at(&path)?),
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

/// `/tmp` streams are always ready: their bytes are in memory.
#[async_trait]
impl Pollable for Cursor {
    async fn ready(&mut self) {}
}

/// `read-via-stream`: reads from a position to the end of the file.
impl InputStream for Cursor {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let bytes = Cursor::read(self, size);
        if bytes.is_empty() && size > 0 {
            return Err(StreamError::Closed);
        }
        Ok(bytes.into())
    }
}

/// `write-via-stream` and `append-via-stream`.
impl OutputStream for Cursor {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        Cursor::write(self, &bytes).map_err(|code| {
            // An `std::io::Error` with the errno, which wasmtime-wasi's
            // `filesystem-error-code` turns back into the WIT error.
            StreamError::LastOperationFailed(std::io::Error::from_raw_os_error(errno(code)).into())
        })
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

/// The errno of the errors a write can fail with.
fn errno(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::InsufficientSpace => libc::ENOSPC,
        ErrorCode::InsufficientMemory => libc::ENOMEM,
        _ => libc::EFBIG,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sandbox::memory::MemoryBudget;
    use crate::sandbox::tmpfs::file::File;
    use crate::sandbox::tmpfs::tree::NODE_BYTES;

    #[test]
    fn streams_read_to_the_end_and_report_no_space() {
        let budget = MemoryBudget::new(NODE_BYTES as u64 + 100);
        let file = Arc::new(File::new(1, budget).unwrap());
        let mut w = Cursor::new(file.clone(), Some(0));
        OutputStream::write(&mut w, Bytes::from_static(b"abcdef")).unwrap();
        let mut r = Cursor::new(file, Some(2));
        assert_eq!(InputStream::read(&mut r, 3).unwrap(), &b"cde"[..]);
        assert_eq!(InputStream::read(&mut r, 3).unwrap(), &b"f"[..]);
        assert!(matches!(
            InputStream::read(&mut r, 3),
            Err(StreamError::Closed)
        ));
        let Err(StreamError::LastOperationFailed(e)) =
            OutputStream::write(&mut w, Bytes::from(vec![0; 200]))
        else {
            panic!("a write past the budget must fail");
        };
        let io = e.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOSPC));
    }
}
