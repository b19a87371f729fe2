//! The generated host traits of both wasi:blobstore drafts, implemented
//! once: the two packages declare the same functions and types under
//! different versions, so one macro writes each version's impls, and each
//! impl only forwards to [`BlobView`].

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use crate::state::blobstore::{
    BlobError, BlobView, Container, HasBlobs, IncomingValue, ObjectNames, OutgoingValue,
};

/// `0.2.0-draft`: WebAssembly/wasi-blobstore (wasmCloud).
mod draft {
    wasmtime::component::bindgen!({
        path: "wit/blobstore-draft",
        world: "wasi:blobstore/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:blobstore/container.container": crate::state::blobstore::Container,
            "wasi:blobstore/container.stream-object-names": crate::state::blobstore::ObjectNames,
            "wasi:blobstore/types.incoming-value": crate::state::blobstore::IncomingValue,
            "wasi:blobstore/types.outgoing-value": crate::state::blobstore::OutgoingValue,
        },
        trappable_error_type: {
            "wasi:blobstore/types.error" => crate::state::blobstore::BlobError,
        },
    });
}

/// `0.2.0-draft-2024-09-01`: Spin's copy of the same interface.
mod spin {
    wasmtime::component::bindgen!({
        path: "wit/blobstore-draft-2024-09-01",
        world: "wasi:blobstore/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:blobstore/container.container": crate::state::blobstore::Container,
            "wasi:blobstore/container.stream-object-names": crate::state::blobstore::ObjectNames,
            "wasi:blobstore/types.incoming-value": crate::state::blobstore::IncomingValue,
            "wasi:blobstore/types.outgoing-value": crate::state::blobstore::OutgoingValue,
        },
        trappable_error_type: {
            "wasi:blobstore/types.error" => crate::state::blobstore::BlobError,
        },
    });
}

/// The impls for the bindings module `$bindings` (a sibling of the module
/// the macro is called in).
macro_rules! serve {
    ($bindings:ident) => {
        use super::$bindings::wasi::blobstore::{blobstore, container, types};

        pub fn add_to_linker<T: Send + 'static>(
            linker: &mut Linker<T>,
            view: fn(&mut T) -> BlobView<'_>,
        ) -> wasmtime::Result<()> {
            types::add_to_linker::<T, HasBlobs>(linker, view)?;
            container::add_to_linker::<T, HasBlobs>(linker, view)?;
            blobstore::add_to_linker::<T, HasBlobs>(linker, view)
        }

        fn pair(id: types::ObjectId) -> (String, String) {
            (id.container, id.object)
        }

        impl blobstore::Host for BlobView<'_> {
            async fn create_container(
                &mut self,
                name: String,
            ) -> Result<Resource<Container>, BlobError> {
                BlobView::create_container(self, &name)
            }

            async fn get_container(
                &mut self,
                name: String,
            ) -> Result<Resource<Container>, BlobError> {
                BlobView::get_container(self, &name)
            }

            async fn delete_container(&mut self, name: String) -> Result<(), BlobError> {
                BlobView::delete_container(self, &name)
            }

            async fn container_exists(&mut self, name: String) -> Result<bool, BlobError> {
                BlobView::container_exists(self, &name)
            }

            async fn copy_object(
                &mut self,
                src: types::ObjectId,
                dest: types::ObjectId,
            ) -> Result<(), BlobError> {
                self.copy(pair(src), pair(dest), false).await
            }

            async fn move_object(
                &mut self,
                src: types::ObjectId,
                dest: types::ObjectId,
            ) -> Result<(), BlobError> {
                self.copy(pair(src), pair(dest), true).await
            }
        }

        impl container::Host for BlobView<'_> {}

        impl container::HostContainer for BlobView<'_> {
            async fn name(&mut self, c: Resource<Container>) -> Result<String, BlobError> {
                Ok(self.container(&c)?.name().to_string())
            }

            async fn info(
                &mut self,
                c: Resource<Container>,
            ) -> Result<types::ContainerMetadata, BlobError> {
                let blobs = self.container(&c)?;
                Ok(types::ContainerMetadata {
                    name: blobs.name().to_string(),
                    created_at: blobs.created_at(),
                })
            }

            async fn get_data(
                &mut self,
                c: Resource<Container>,
                name: String,
                start: u64,
                end: u64,
            ) -> Result<Resource<IncomingValue>, BlobError> {
                BlobView::get_data(self, &c, &name, start, end).await
            }

            async fn write_data(
                &mut self,
                c: Resource<Container>,
                name: String,
                data: Resource<OutgoingValue>,
            ) -> Result<(), BlobError> {
                BlobView::write_data(self, &c, name, &data)
            }

            async fn list_objects(
                &mut self,
                c: Resource<Container>,
            ) -> Result<Resource<ObjectNames>, BlobError> {
                BlobView::list_objects(self, &c).await
            }

            async fn delete_object(
                &mut self,
                c: Resource<Container>,
                name: String,
            ) -> Result<(), BlobError> {
                BlobView::delete_objects(self, &c, &[name]).await
            }

            async fn delete_objects(
                &mut self,
                c: Resource<Container>,
                names: Vec<String>,
            ) -> Result<(), BlobError> {
                BlobView::delete_objects(self, &c, &names).await
            }

            async fn has_object(
                &mut self,
                c: Resource<Container>,
                name: String,
            ) -> Result<bool, BlobError> {
                Ok(self.container(&c)?.exists(&name).await?)
            }

            async fn object_info(
                &mut self,
                c: Resource<Container>,
                name: String,
            ) -> Result<types::ObjectMetadata, BlobError> {
                let (container, info) = BlobView::object_info(self, &c, &name).await?;
                Ok(types::ObjectMetadata {
                    name,
                    container,
                    created_at: info.created_at,
                    size: info.size,
                })
            }

            async fn clear(&mut self, c: Resource<Container>) -> Result<(), BlobError> {
                Ok(self.container(&c)?.clear().await?)
            }

            async fn drop(&mut self, c: Resource<Container>) -> wasmtime::Result<()> {
                self.table.delete(c)?;
                Ok(())
            }
        }

        impl container::HostStreamObjectNames for BlobView<'_> {
            async fn read_stream_object_names(
                &mut self,
                names: Resource<ObjectNames>,
                len: u64,
            ) -> Result<(Vec<String>, bool), BlobError> {
                self.read_names(&names, len)
            }

            async fn skip_stream_object_names(
                &mut self,
                names: Resource<ObjectNames>,
                num: u64,
            ) -> Result<(u64, bool), BlobError> {
                self.skip_names(&names, num)
            }

            async fn drop(&mut self, names: Resource<ObjectNames>) -> wasmtime::Result<()> {
                self.table.delete(names)?;
                Ok(())
            }
        }

        impl types::Host for BlobView<'_> {
            fn convert_error(&mut self, err: BlobError) -> wasmtime::Result<String> {
                err.wire()
            }
        }

        impl types::HostOutgoingValue for BlobView<'_> {
            async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
                BlobView::new_outgoing_value(self)
            }

            async fn outgoing_value_write_body(
                &mut self,
                value: Resource<OutgoingValue>,
            ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
                self.write_body(value)
            }

            async fn finish(&mut self, value: Resource<OutgoingValue>) -> Result<(), BlobError> {
                BlobView::finish(self, value).await
            }

            async fn drop(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<()> {
                self.table.delete(value)?;
                Ok(())
            }
        }

        impl types::HostIncomingValue for BlobView<'_> {
            async fn incoming_value_consume_sync(
                &mut self,
                value: Resource<IncomingValue>,
            ) -> Result<Vec<u8>, BlobError> {
                self.consume_sync(value).await
            }

            async fn incoming_value_consume_async(
                &mut self,
                value: Resource<IncomingValue>,
            ) -> Result<Resource<DynInputStream>, BlobError> {
                self.consume_async(value)
            }

            async fn size(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<u64> {
                BlobView::size(self, &value)
            }

            async fn drop(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<()> {
                self.table.delete(value)?;
                Ok(())
            }
        }
    };
}

mod serve_draft {
    use super::*;
    serve!(draft);
}

mod serve_spin {
    use super::*;
    serve!(spin);
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> BlobView<'_>,
) -> wasmtime::Result<()> {
    serve_draft::add_to_linker(linker, view)?;
    serve_spin::add_to_linker(linker, view)
}
