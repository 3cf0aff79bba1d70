//! Review findings: files.
