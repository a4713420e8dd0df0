//! The [`Host`]: one wasmtime engine (Cranelift, pooling allocator, epoch interruption), the
//! linker with WASI 0.2 and wasi:http, the compile cache, the pooled HTTP client and the
//! thread that advances the epoch.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::{self, ArtifactCache, Loaded};
use crate::config::HostConfig;
use crate::environment::GuestState;
use crate::error::LoadError;
use crate::limits::MAX_TABLE_ELEMENTS;
use crate::outbound::HttpClient;

/// How often the epoch advances; timeouts are enforced to this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Runs function components. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub engine: Engine,
    pub linker: Linker<GuestState>,
    pub client: HttpClient,
    pub cache: Option<ArtifactCache>,
    pub config: HostConfig,
    pub next_environment: AtomicU64,
}

impl Host {
    /// Builds the engine and starts the epoch ticker (it stops when the engine is dropped).
    pub fn new(config: HostConfig) -> Result<Self, LoadError> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .and_then(|()| {
                crate::environment::bindings::xstage::function::response_stream::add_to_linker::<
                    GuestState,
                    wasmtime::component::HasSelf<GuestState>,
                >(&mut linker, |state| state)
            })
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let client = HttpClient::new().map_err(LoadError::Tls)?;
        let cache = config.cache_dir.as_ref().and_then(|dir| {
            ArtifactCache::new(dir)
                .inspect_err(
                    |e| tracing::warn!(dir = %dir.display(), error = %e, "compile cache disabled"),
                )
                .ok()
        });
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("xstage-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(HostInner {
                engine,
                linker,
                client,
                cache,
                config,
                next_environment: AtomicU64::new(1),
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn cache(&self) -> Option<&ArtifactCache> {
        self.inner.cache.as_ref()
    }

    /// Compiles (or loads from the cache) the component at `path`, without linking it.
    pub async fn compile(&self, path: &Path) -> Result<Loaded, LoadError> {
        let engine = self.inner.engine.clone();
        let cache = self.inner.cache.clone();
        let path = path.to_path_buf();
        let join = tokio::task::spawn_blocking(move || cache::load(&engine, cache.as_ref(), &path));
        join.await
            .map_err(|e| LoadError::Engine(format!("the compile task failed: {e}")))?
    }
}

fn engine_config(host: &HostConfig) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // 64x64->128-bit multiplies as one instruction (`i64.mul_wide_u`) rather than a call to
    // compiler-builtins' `__multi3`: float formatting (ryu), hashing (foldhash) and decimals
    // use them per value. The guest is built with `+wide-arithmetic` (`.cargo/config.toml`).
    config.wasm_wide_arithmetic(true);
    // No map from machine code back to wasm offsets: it was 14 MB of the stage query
    // component's 122 MB artifact, and served only the `0x…` offsets of a trap's frames
    // (there is no DWARF to take them further). Frames keep their function, named by
    // `names`.
    config.generate_address_map(false);
    config.max_wasm_stack(host.max_wasm_stack);
    config.async_stack_size(host.max_wasm_stack + (1 << 20));
    let n = host.max_environments.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n * 16)
        .total_memories(n * 2)
        .total_tables(n * 16)
        .total_stacks(n)
        .max_memory_size((host.max_memory_mb as usize) << 20)
        // The stage query component's core instance needs ~2.3 MB of VM context (its
        // function references), above the default 1 MB.
        .max_core_instance_size(16 << 20)
        .max_component_instance_size(16 << 20)
        // DataFusion's function table alone has ~30k elements, above the default 20k.
        .table_elements(MAX_TABLE_ELEMENTS);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Functions Cranelift compiled before are taken from the cache directory: after a small
    // change to a guest, only what changed is compiled again.
    if let Some(dir) = &host.cache_dir {
        match crate::cache::IncrementalStore::new(dir) {
            Ok(store) => {
                if let Err(e) = config.enable_incremental_compilation(Arc::new(store)) {
                    tracing::warn!(error = %e, "incremental compilation disabled");
                }
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "incremental compilation disabled")
            }
        }
    }
    config
}
