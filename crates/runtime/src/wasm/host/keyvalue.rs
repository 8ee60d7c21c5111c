//! `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`, `batch`; the WIT is vendored under
//! `crates/runtime/wit/keyvalue/`): each call goes to the invocation's
//! [`KeyValues`](crate::services::KeyValues) service, and its answer and errors map
//! back onto the interface's types.
//!
//! A `bucket` resource holds the [`KvBucket`] the service opened (so grants and the
//! store's existence are checked once, at `open`); a `cas` resource holds the key's
//! value and version as read when it was made, and `swap` writes only if that version
//! is still current. The interfaces are added to the component linker once, when the
//! runtime starts: a component that does not import them pays nothing.

use crate::services::{KeyValues, KvBucket, KvError, KvSwap, KvVersioned};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::wasm::host::keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": crate::wasm::host::keyvalue::Cas,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

/// A guest's opened store.
pub struct Bucket(Arc<dyn KvBucket>);

/// A guest's compare-and-swap of one key: what the key held when it was made.
pub struct Cas {
    bucket: Arc<dyn KvBucket>,
    key: String,
    /// `None`: the key held nothing.
    read: Option<KvVersioned>,
}

/// What the bindings reach of an invocation's state.
pub(crate) struct KeyValueView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) key_values: &'a Arc<dyn KeyValues>,
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// Adds the three interfaces to `linker`. Called once, when the runtime starts.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<T, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<T, HasKeyValue>(linker, view)?;
    Ok(())
}

fn wit_error(e: KvError) -> store::Error {
    match e {
        KvError::AccessDenied => store::Error::AccessDenied,
        KvError::NoSuchStore => store::Error::NoSuchStore,
        KvError::Other(why) => store::Error::Other(why),
    }
}

type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

impl KeyValueView<'_> {
    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<Arc<dyn KvBucket>> {
        Ok(self.table.get(bucket)?.0.clone())
    }

    /// Reads `key` for a compare-and-swap, as a new `cas` resource.
    async fn new_cas(&mut self, bucket: Arc<dyn KvBucket>, key: String) -> Answer<Resource<Cas>> {
        let read = match bucket.read_versioned(key.clone()).await {
            Ok(read) => read,
            Err(e) => return Ok(Err(wit_error(e))),
        };
        Ok(Ok(self.table.push(Cas { bucket, key, read })?))
    }
}

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> Answer<Resource<Bucket>> {
        match self.key_values.open(&identifier).await {
            Ok(bucket) => Ok(Ok(self.table.push(Bucket(bucket))?)),
            Err(e) => Ok(Err(wit_error(e))),
        }
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        Ok(self.bucket(&bucket)?.get(key).await.map_err(wit_error))
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        Ok(self.bucket(&bucket)?.set(key, value).await.map_err(wit_error))
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<()> {
        Ok(self.bucket(&bucket)?.delete(key).await.map_err(wit_error))
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<bool> {
        Ok(self.bucket(&bucket)?.exists(key).await.map_err(wit_error))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Answer<store::KeyResponse> {
        Ok(self
            .bucket(&bucket)?
            .list_keys(cursor)
            .await
            .map(|page| store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            })
            .map_err(wit_error))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: i64) -> Answer<i64> {
        Ok(self
            .bucket(&bucket)?
            .increment(key, delta)
            .await
            .map_err(wit_error))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { bucket, key, read } = self.table.delete(cas)?;
        let expected = read.map(|r| r.version);
        match bucket.write_if(key.clone(), value, expected).await {
            Ok(KvSwap::Swapped) => Ok(Ok(())),
            Err(e) => Ok(Err(atomics::CasError::StoreError(wit_error(e)))),
            // The interface hands back a handle at the key's latest version, for a retry.
            Ok(KvSwap::Changed) => match self.new_cas(bucket, key).await? {
                Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
                Err(e) => Ok(Err(atomics::CasError::StoreError(e))),
            },
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Resource<Cas>> {
        let bucket = self.bucket(&bucket)?;
        self.new_cas(bucket, key).await
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Answer<Option<Vec<u8>>> {
        let cas = self.table.get(&cas)?;
        Ok(Ok(cas.read.as_ref().map(|r| r.value.clone())))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        Ok(self.bucket(&bucket)?.get_many(keys).await.map_err(wit_error))
    }

    async fn set_many(&mut self, bucket: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Answer<()> {
        Ok(self
            .bucket(&bucket)?
            .set_many(key_values)
            .await
            .map_err(wit_error))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        Ok(self.bucket(&bucket)?.delete_many(keys).await.map_err(wit_error))
    }
}
