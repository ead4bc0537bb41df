//! Packet buffers shared by the workers: a bounded global free ring and one cache per worker,
//! like a DPDK mempool with per-lcore caches.
//!
//! Why not one `HeapPool` per worker: buffers move between workers (a packet received by one
//! worker is handed to the client's owner, which frees it after transmission), so per-worker
//! pools would drain on one side and pile up on the other. Here a worker frees into its cache;
//! past `cache_max` it returns a burst to the shared ring, and an empty cache refills a burst
//! from it. The ring is lock-free (crossbeam `ArrayQueue`) and touched once per burst of
//! buffers, not per packet. The total number of buffers ever created is bounded by `limit`.
//!
//! The runtime is parameterised by [`Buffers`]: the buffer type and where each worker's
//! [`WorkerBufPool`] comes from. [`HeapBuffers`] (this module's pools) is the default; with the
//! `dpdk` feature, `ports::dpdk::DpdkBuffers` hands every worker an `MbufPool` over the
//! mempool of its NUMA socket (whose per-lcore caches play the part of [`WorkerPool`]'s cache).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use pipelines::buf::{BufPool, DEFAULT_CAPACITY, DEFAULT_HEADROOM};
use pipelines::{HeapBuf, PacketBuf};

use crate::ports::BURST;

/// A worker's buffer pool, as the runtime needs it.
pub trait WorkerBufPool<B: PacketBuf>: BufPool<B> + Send + 'static {
    /// Buffers held privately by this pool (published in the worker's snapshot).
    fn cached(&self) -> usize;
    /// Returns privately held buffers to the shared store (at worker exit).
    fn flush(&mut self);
}

/// Where the runtime's packet buffers come from. One value per runtime, shared by its threads.
pub trait Buffers: Send + Sync + 'static {
    /// The buffer every port of the runtime moves.
    type Buf: PacketBuf + Send + 'static;
    /// A worker's pool.
    type Pool: WorkerBufPool<Self::Buf>;
    /// The pool of worker `worker` (called on the starting thread, before the worker runs).
    fn worker_pool(&self, worker: usize) -> Self::Pool;
    /// Runs on worker `worker`'s thread, after pinning and before its loop (e.g. registering
    /// the thread with an EAL). An error is reported as a start warning; the worker runs on.
    fn thread_start(&self, _worker: usize) -> Result<(), String> {
        Ok(())
    }
    /// Runs on the worker's thread after its loop (and after its pool was flushed).
    fn thread_stop(&self, _worker: usize) {}
}

/// The default [`Buffers`]: [`HeapBuf`]s from one bounded [`SharedPool`], a [`WorkerPool`]
/// cache per worker.
#[derive(Debug, Clone)]
pub struct HeapBuffers {
    pub shared: Arc<SharedPool>,
    pub cache_max: usize,
}

impl HeapBuffers {
    /// At most `limit` buffers of the default geometry, caches of 1024.
    pub fn with_limit(limit: usize) -> HeapBuffers {
        HeapBuffers {
            shared: SharedPool::with_limit(limit),
            cache_max: 1024,
        }
    }
}

impl Buffers for HeapBuffers {
    type Buf = HeapBuf;
    type Pool = WorkerPool;
    fn worker_pool(&self, _worker: usize) -> WorkerPool {
        WorkerPool::new(self.shared.clone(), self.cache_max)
    }
}

impl WorkerBufPool<HeapBuf> for WorkerPool {
    fn cached(&self) -> usize {
        WorkerPool::cached(self)
    }
    fn flush(&mut self) {
        WorkerPool::flush(self)
    }
}

/// The shared part.
#[derive(Debug)]
pub struct SharedPool {
    free: ArrayQueue<HeapBuf>,
    allocated: AtomicUsize,
    limit: usize,
    headroom: usize,
    capacity: usize,
}

impl SharedPool {
    /// At most `limit` buffers of `capacity` bytes with `headroom` bytes in front.
    pub fn new(limit: usize, headroom: usize, capacity: usize) -> Arc<SharedPool> {
        Arc::new(SharedPool {
            free: ArrayQueue::new(limit.max(1)),
            allocated: AtomicUsize::new(0),
            limit: limit.max(1),
            headroom,
            capacity,
        })
    }

    /// Default geometry (2 KiB data room, 128 bytes of headroom).
    pub fn with_limit(limit: usize) -> Arc<SharedPool> {
        Self::new(limit, DEFAULT_HEADROOM, DEFAULT_CAPACITY)
    }

    /// Buffers created so far.
    pub fn allocated(&self) -> usize {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Buffers in the shared ring.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// The cap on buffers.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn create(&self) -> Option<HeapBuf> {
        let prev = self
            .allocated
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.limit).then_some(n + 1)
            });
        prev.ok()
            .map(|_| HeapBuf::new(self.headroom, self.capacity))
    }

    fn give_back(&self, b: HeapBuf) {
        if self.free.push(b).is_err() {
            // Cannot happen while at most `limit` buffers exist; forget it if it does.
            self.allocated.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One worker's view: a private cache in front of the shared ring.
#[derive(Debug)]
pub struct WorkerPool {
    shared: Arc<SharedPool>,
    cache: Vec<HeapBuf>,
    cache_max: usize,
}

impl WorkerPool {
    /// A cache of at most `cache_max` buffers (at least two bursts).
    pub fn new(shared: Arc<SharedPool>, cache_max: usize) -> WorkerPool {
        let cache_max = cache_max.max(2 * BURST);
        WorkerPool {
            shared,
            cache: Vec::with_capacity(cache_max + 1),
            cache_max,
        }
    }

    /// Buffers in this cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Returns every cached buffer to the shared ring.
    pub fn flush(&mut self) {
        for b in self.cache.drain(..) {
            self.shared.give_back(b);
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.flush();
    }
}

impl BufPool<HeapBuf> for WorkerPool {
    fn alloc(&mut self) -> Option<HeapBuf> {
        if self.cache.is_empty() {
            for _ in 0..BURST {
                match self.shared.free.pop() {
                    Some(b) => self.cache.push(b),
                    None => break,
                }
            }
        }
        match self.cache.pop() {
            Some(mut b) => {
                b.reset(self.shared.headroom);
                Some(b)
            }
            None => self.shared.create(),
        }
    }

    fn free(&mut self, buf: HeapBuf) {
        if buf.capacity() != self.shared.capacity {
            // Not one of ours (e.g. a test's own buffer): let it go.
            return;
        }
        self.cache.push(buf);
        if self.cache.len() > self.cache_max {
            for _ in 0..BURST {
                match self.cache.pop() {
                    Some(b) => self.shared.give_back(b),
                    None => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::PacketBuf;

    #[test]
    fn buffers_migrate_between_workers_without_exceeding_the_limit() {
        // Each cache may hold up to 64 (+ a burst): the limit must cover the caches.
        let shared = SharedPool::new(200, 16, 256);
        let mut a = WorkerPool::new(shared.clone(), 64);
        let mut b = WorkerPool::new(shared.clone(), 64);
        // A allocates, B frees (a handoff), many times over: A never runs dry.
        for _ in 0..50 {
            let bufs: Vec<HeapBuf> = (0..40).map(|_| a.alloc().expect("buffer")).collect();
            for x in bufs {
                b.free(x);
            }
        }
        assert!(shared.allocated() <= 200);
        let mut x = a.alloc().unwrap();
        assert_eq!((x.headroom(), x.len()), (16, 0));
        assert!(x.extend_from_slice(&[1, 2, 3]));
        b.free(x);
        assert_eq!(
            b.alloc().unwrap().len(),
            0,
            "recycled buffers come back empty"
        );
    }

    #[test]
    fn the_limit_holds() {
        let shared = SharedPool::new(10, 16, 256);
        let mut a = WorkerPool::new(shared.clone(), 64);
        let got: Vec<HeapBuf> = (0..10).map(|_| a.alloc().unwrap()).collect();
        assert!(a.alloc().is_none());
        for g in got {
            a.free(g);
        }
        let kept = a.alloc().expect("a freed buffer is reused");
        drop(a);
        assert_eq!(
            shared.available(),
            9,
            "the cache went back to the shared ring"
        );
        drop(kept);
    }
}
