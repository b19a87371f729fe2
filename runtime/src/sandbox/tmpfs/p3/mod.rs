//! wasi:filesystem@0.3 `types` and `preopens` for a Wisp instance, as
//! `super::p2` does for 0.2: wasmtime-wasi's own generated bindings,
//! implemented so a call on one of wasmtime-wasi's descriptors (the `dirs`)
//! is handed to wasmtime-wasi's implementation unchanged (through an
//! accessor whose getter is the store's `WasiFilesystemView`), and a call on
//! a [`TmpDescriptor`] goes to the instance's in-memory `/tmp`. The
//! operations are [`TmpDescriptor`]'s, shared with 0.2; this module only
//! converts between the 0.3 and 0.2 types and carries bytes and directory
//! entries over 0.3's `stream`s and `future`s.

mod convert;
mod stream;

use tokio::sync::oneshot;
use wasmtime::AsContextMut;
use wasmtime::component::{
    Access, Accessor, FutureReader, Resource, ResourceTableError, StreamReader,
};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types as p2;
use wasmtime_wasi::p3::bindings::filesystem::preopens;
use wasmtime_wasi::p3::bindings::filesystem::types::{
    self, Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode,
    Filesize, HostDescriptorWithStore, MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use wasmtime_wasi::p3::filesystem::{FilesystemError, FilesystemResult};

use crate::sandbox::tmpfs::descriptor::{
    ACROSS_MOUNTS, NO_LINKS, TmpDescriptor, WispFs, WispFsView,
};
use crate::sandbox::tmpfs::file::Cursor;
use convert::{
    descriptor_flags, descriptor_stat, descriptor_type, directory_entry, error_code, flags_p2,
    metadata_hash, open_flags_p2, timestamp,
};
use stream::TmpStream;

/// The `/tmp` descriptor `fd` names, handed to `op` with the instance's
/// view; `None`: one of wasmtime-wasi's.
fn on_tmp<U, R>(
    store: &Accessor<U, WispFs>,
    fd: &Resource<Descriptor>,
    op: impl FnOnce(TmpDescriptor, &mut WispFsView<'_>) -> R,
) -> Result<Option<R>, ResourceTableError> {
    store.with(|mut access| {
        let mut view = access.get();
        Ok(view.tmp(fd)?.map(|d| op(d, &mut view)))
    })
}

/// Both descriptors, if both are `/tmp`'s; `None` if neither is; a call
/// naming one of each is refused as a move across mounts.
fn on_tmp_pair<U, R>(
    store: &Accessor<U, WispFs>,
    a: &Resource<Descriptor>,
    b: &Resource<Descriptor>,
    op: impl FnOnce(TmpDescriptor, TmpDescriptor, &mut WispFsView<'_>) -> Result<R, p2::ErrorCode>,
) -> FilesystemResult<Option<R>> {
    store.with(|mut access| {
        let mut view = access.get();
        match (view.tmp(a)?, view.tmp(b)?) {
            (None, None) => Ok(None),
            (Some(a), Some(b)) => fs(op(a, b, &mut view)).map(Some),
            _ => Err(error_code(ACROSS_MOUNTS).into()),
        }
    })
}

/// An accessor for wasmtime-wasi's implementation.
fn wasi<U: WasiFilesystemView>(store: &Accessor<U, WispFs>) -> Accessor<U, WasiFilesystem> {
    store.with_getter::<WasiFilesystem>(U::filesystem)
}

/// An access for wasmtime-wasi's implementation.
fn wasi_access<'a, U: WasiFilesystemView>(
    store: &'a mut Access<'_, U, WispFs>,
) -> Access<'a, U, WasiFilesystem> {
    Access::<U, WasiFilesystem>::new(store.as_context_mut(), U::filesystem)
}

fn fs<T>(result: Result<T, p2::ErrorCode>) -> FilesystemResult<T> {
    result.map_err(|code| error_code(code).into())
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
    fn convert_error_code(&mut self, error: FilesystemError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.wasi, error)
    }
}

impl types::HostDescriptor for WispFsView<'_> {
    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        if self.drop_tmp(&fd)? {
            return Ok(());
        }
        types::HostDescriptor::drop(&mut self.wasi, fd)
    }
}

impl<U: WasiFilesystemView + 'static> HostDescriptorWithStore<U> for WispFs {
    fn read_via_stream(
        mut store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<Result<(), ErrorCode>>)> {
        let Some(d) = store.get().tmp(&fd)? else {
            return WasiFilesystem::read_via_stream(wasi_access(&mut store), fd, offset);
        };
        let (result_tx, result_rx) = oneshot::channel();
        let stream = match d.reader(offset) {
            Ok(cursor) => StreamReader::new(&mut store, TmpStream::new(cursor, result_tx))?,
            Err(code) => {
                let _ = result_tx.send(Err(error_code(code)));
                StreamReader::new(&mut store, Vec::new())?
            }
        };
        Ok((stream, FutureReader::new(&mut store, result_rx)?))
    }

    fn write_via_stream(
        mut store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        data: StreamReader<u8>,
        offset: Filesize,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        match store.get().tmp(&fd)? {
            None => WasiFilesystem::write_via_stream(wasi_access(&mut store), fd, data, offset),
            Some(d) => write_to(store, d.writer(Some(offset)), data),
        }
    }

    fn append_via_stream(
        mut store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        match store.get().tmp(&fd)? {
            None => WasiFilesystem::append_via_stream(wasi_access(&mut store), fd, data),
            Some(d) => write_to(store, d.writer(None), data),
        }
    }

    async fn advise(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        offset: Filesize,
        length: Filesize,
        advice: Advice,
    ) -> FilesystemResult<()> {
        match on_tmp(store, &fd, |d, _| d.advise())? {
            Some(done) => fs(done),
            None => WasiFilesystem::advise(&wasi(store), fd, offset, length, advice).await,
        }
    }

    async fn sync_data(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
    ) -> FilesystemResult<()> {
        match on_tmp(store, &fd, |_, _| ())? {
            Some(()) => Ok(()),
            None => WasiFilesystem::sync_data(&wasi(store), fd).await,
        }
    }

    async fn get_flags(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
    ) -> FilesystemResult<DescriptorFlags> {
        match on_tmp(store, &fd, |d, _| d.flags())? {
            Some(flags) => Ok(descriptor_flags(flags)),
            None => WasiFilesystem::get_flags(&wasi(store), fd).await,
        }
    }

    async fn get_type(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
    ) -> FilesystemResult<DescriptorType> {
        match on_tmp(store, &fd, |d, _| d.kind())? {
            Some(kind) => Ok(descriptor_type(kind)),
            None => WasiFilesystem::get_type(&wasi(store), fd).await,
        }
    }

    async fn set_size(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        size: Filesize,
    ) -> FilesystemResult<()> {
        match on_tmp(store, &fd, |d, _| d.set_size(size))? {
            Some(done) => fs(done),
            None => WasiFilesystem::set_size(&wasi(store), fd, size).await,
        }
    }

    async fn set_times(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FilesystemResult<()> {
        let times = (timestamp(&atim)?, timestamp(&mtim)?);
        match on_tmp(store, &fd, |d, _| d.set_times(times.0, times.1))? {
            Some(()) => Ok(()),
            None => WasiFilesystem::set_times(&wasi(store), fd, atim, mtim).await,
        }
    }

    fn read_directory(
        mut store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
    ) -> wasmtime::Result<(
        StreamReader<DirectoryEntry>,
        FutureReader<Result<(), ErrorCode>>,
    )> {
        let Some(d) = store.get().tmp(&fd)? else {
            return WasiFilesystem::read_directory(wasi_access(&mut store), fd);
        };
        let (entries, result) = match d.list() {
            Ok(entries) => (entries.into_iter().map(directory_entry).collect(), Ok(())),
            Err(code) => (Vec::new(), Err(error_code(code))),
        };
        Ok((
            StreamReader::new(&mut store, entries)?,
            FutureReader::new(&mut store, async { Ok::<_, wasmtime::Error>(result) })?,
        ))
    }

    async fn sync(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FilesystemResult<()> {
        match on_tmp(store, &fd, |_, _| ())? {
            Some(()) => Ok(()),
            None => WasiFilesystem::sync(&wasi(store), fd).await,
        }
    }

    async fn create_directory_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FilesystemResult<()> {
        match on_tmp(store, &fd, |d, v| d.create_directory_at(v.tree, &path))? {
            Some(done) => fs(done),
            None => WasiFilesystem::create_directory_at(&wasi(store), fd, path).await,
        }
    }

    async fn stat(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
    ) -> FilesystemResult<DescriptorStat> {
        match on_tmp(store, &fd, |d, _| d.stat())? {
            Some(stat) => Ok(descriptor_stat(stat)),
            None => WasiFilesystem::stat(&wasi(store), fd).await,
        }
    }

    async fn stat_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FilesystemResult<DescriptorStat> {
        match on_tmp(store, &fd, |d, _| d.stat_at(&path))? {
            Some(stat) => fs(stat).map(descriptor_stat),
            None => WasiFilesystem::stat_at(&wasi(store), fd, path_flags, path).await,
        }
    }

    async fn set_times_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FilesystemResult<()> {
        let times = (timestamp(&atim)?, timestamp(&mtim)?);
        match on_tmp(store, &fd, |d, _| d.set_times_at(&path, times.0, times.1))? {
            Some(done) => fs(done),
            None => {
                let wasi = wasi(store);
                WasiFilesystem::set_times_at(&wasi, fd, path_flags, path, atim, mtim).await
            }
        }
    }

    /// Hard links are not supported in `/tmp`, nor between `/tmp` and `dirs`.
    async fn link_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FilesystemResult<()> {
        match on_tmp_pair(store, &fd, &new_fd, |_, _, _| Err::<(), _>(NO_LINKS))? {
            Some(()) => Ok(()),
            None => {
                let wasi = wasi(store);
                WasiFilesystem::link_at(&wasi, fd, old_path_flags, old_path, new_fd, new_path).await
            }
        }
    }

    async fn open_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FilesystemResult<Resource<Descriptor>> {
        let opened = on_tmp(store, &fd, |d, v| {
            let opened = d.open_at(v.tree, &path, open_flags_p2(open_flags), flags_p2(flags));
            fs(opened).and_then(|opened| Ok(v.push(opened)?))
        })?;
        match opened {
            Some(opened) => opened,
            None => {
                let wasi = wasi(store);
                WasiFilesystem::open_at(&wasi, fd, path_flags, path, open_flags, flags).await
            }
        }
    }

    async fn readlink_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FilesystemResult<String> {
        match on_tmp(store, &fd, |d, _| d.readlink_at(&path))? {
            Some(target) => fs(target),
            None => WasiFilesystem::readlink_at(&wasi(store), fd, path).await,
        }
    }

    async fn remove_directory_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FilesystemResult<()> {
        match on_tmp(store, &fd, |d, v| d.remove_at(v.tree, &path, true))? {
            Some(done) => fs(done),
            None => WasiFilesystem::remove_directory_at(&wasi(store), fd, path).await,
        }
    }

    /// Within `/tmp`, or within wasmtime-wasi's directories; between the
    /// two, `cross-device` (as `rename` across mounts).
    async fn rename_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FilesystemResult<()> {
        let renamed = on_tmp_pair(store, &fd, &new_fd, |old, new, v| {
            old.rename_at(v.tree, &old_path, &new, &new_path)
        })?;
        match renamed {
            Some(()) => Ok(()),
            None => WasiFilesystem::rename_at(&wasi(store), fd, old_path, new_fd, new_path).await,
        }
    }

    async fn symlink_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        old_path: String,
        new_path: String,
    ) -> FilesystemResult<()> {
        match on_tmp(store, &fd, |_, _| ())? {
            Some(()) => Err(error_code(NO_LINKS).into()),
            None => WasiFilesystem::symlink_at(&wasi(store), fd, old_path, new_path).await,
        }
    }

    async fn unlink_file_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FilesystemResult<()> {
        match on_tmp(store, &fd, |d, v| d.remove_at(v.tree, &path, false))? {
            Some(done) => fs(done),
            None => WasiFilesystem::unlink_file_at(&wasi(store), fd, path).await,
        }
    }

    async fn is_same_object(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        other: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        let same = store.with(|mut access| -> Result<_, ResourceTableError> {
            let mut view = access.get();
            Ok(match (view.tmp(&fd)?, view.tmp(&other)?) {
                (None, None) => None,
                (Some(a), Some(b)) => Some(a.is_same_object(&b)),
                _ => Some(false),
            })
        })?;
        match same {
            Some(same) => Ok(same),
            None => WasiFilesystem::is_same_object(&wasi(store), fd, other).await,
        }
    }

    async fn metadata_hash(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
    ) -> FilesystemResult<MetadataHashValue> {
        match on_tmp(store, &fd, |d, _| d.metadata_hash())? {
            Some(hash) => Ok(metadata_hash(hash)),
            None => WasiFilesystem::metadata_hash(&wasi(store), fd).await,
        }
    }

    async fn metadata_hash_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FilesystemResult<MetadataHashValue> {
        match on_tmp(store, &fd, |d, _| d.metadata_hash_at(&path))? {
            Some(hash) => fs(hash).map(metadata_hash),
            None => WasiFilesystem::metadata_hash_at(&wasi(store), fd, path_flags, path).await,
        }
    }
}

/// `write-via-stream` and `append-via-stream` of a `/tmp` file: `data` is
/// written through `writer` as it arrives.
fn write_to<U>(
    mut store: Access<'_, U, WispFs>,
    writer: Result<Cursor, p2::ErrorCode>,
    data: StreamReader<u8>,
) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
    let (result_tx, result_rx) = oneshot::channel();
    match writer {
        Ok(cursor) => data.pipe(&mut store, TmpStream::new(cursor, result_tx))?,
        Err(code) => {
            let mut data = data;
            data.close(&mut store)?;
            let _ = result_tx.send(Err(error_code(code)));
        }
    }
    FutureReader::new(&mut store, result_rx)
}
