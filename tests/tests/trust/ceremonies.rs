//! Review findings: ceremonies.
