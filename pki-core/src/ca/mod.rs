//! The online CA's state and work: its folder (generations, root CRL), the ledger, the
//! issuance policy gate, issuing one leaf or a batch, and the lifecycle (CRLs, renewal,
//! re-issue after a rotation).

// The submodules are private to the crate: other crates use the items re-exported here.
pub(crate) mod batch;
pub(crate) mod fleet;
pub(crate) mod folder;
pub(crate) mod issuing;
pub(crate) mod ledger;
pub(crate) mod lifecycle;
pub(crate) mod policy;
pub(crate) mod request;

pub use batch::{run as run_batch, BatchFile, BatchLeaf, BatchReport};
pub use fleet::{FleetState, FAILING_REFUSALS};
pub use folder::root_crl::{
    install as install_root_crl, installed as installed_root_crl, pinned_root,
    Installed as InstalledRootCrl, RootCrl,
};
pub use folder::root_hold::{
    decide as root_crl_hold, release as release_root_crl_hold, HeldEntry, RootHold,
    DEFAULT_ROOT_CRL_HOLD,
};
pub use folder::{
    check_key_matches, key_fingerprint, CaDir, CaLock, CaState, GenerationState, NewKey,
    StagedRequest, TokenLocation,
};
pub use issuing::{IssuedLeaf, IssuingCa, LeafPaths};
pub use ledger::{
    copy_ledger, AgentSeen, CopyReport, CrlKind, DumpLeaf, EnrolGrant, EnrolLeaf, LeafRecord,
    Ledger, LedgerDump, LedgerLocation, LedgerMark, LedgerStore, ListFilter, RevocationMark,
    RevokedLeaf, RowUnder, SqliteLedger,
};
pub use lifecycle::{
    crl_file_der, direct_entries, etcd_entries, expiry_warnings, publish_crl, replace_leaf,
    sign_direct_crl, sign_etcd_crl, CrlFormat, RootEntries, Selection, SignedCrl, CRL_WARN_DAYS,
    INTERMEDIATE_WARN_DAYS,
};
pub use policy::{
    approve_cn, approve_csr, ledger_request, presented_matches_row, Approval, Constraints, Gate,
    LeafName, Subtree,
};
pub use request::{LeafKey, LeafRequest};
