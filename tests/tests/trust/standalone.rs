//! Review findings: standalone.
