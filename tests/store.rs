//! The store seam's conformance suite: the contract written on `db::backend::Backend`,
//! checked against every backend through the public `Db` API only. Each case runs on the
//! in-memory backend, on redb (reopened to check durability) and, with the `etcd` feature
//! and an `etcd` binary on PATH, on a real etcd cluster (see `tests/cluster.rs`).

mod conformance;

use conformance::Harness;

#[tokio::test]
async fn memory_backend_meets_the_contract() {
    conformance::run_all(&mut Harness::memory()).await;
}

#[tokio::test]
async fn redb_backend_meets_the_contract() {
    conformance::run_all(&mut Harness::redb()).await;
}
