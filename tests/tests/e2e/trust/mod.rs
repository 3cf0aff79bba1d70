//! The security review of issue 12, pinned: each submodule holds the tests of one group of findings.
//! Every test here failed on the code before the fix and passes now.

mod ceremonies;
mod files;
mod gate;
mod generated;
mod standalone;
